"""SIGTERM to a real `proctord run` under a simulated systemd: a real notify socket in $NOTIFY_SOCKET,
a real broker, a looping video as the camera. The daemon says READY, feeds the watchdog, reports its
state, and on SIGTERM says STOPPING, closes the session as interrupted, finishes the recording segment,
flushes the outbox to the broker and exits 0 well within the unit's TimeoutStopSec."""

from __future__ import annotations

import os
import re
import signal

import av
import pytest
from conftest import REPO, daemon_config, kill_process, start_proctord, wait_until
from mqtt_helpers import Supervisor
from test_notify import NotifySocket

from daemon.config import load_config
from daemon.store.db import StoreReader

UNIT_STOP_TIMEOUT_S = float(re.search(r"\nTimeoutStopSec=(\d+)\n", (REPO / "systemd/proctord.service").read_text())[1])


@pytest.fixture
def supervisor(mosquitto):
    sessions = Supervisor(mosquitto.port, topic="proctor/+/+/session", client_id="test-shutdown-supervisor")
    yield sessions
    sessions.close()


def session_kinds(supervisor: Supervisor) -> list[str]:
    return [message["kind"] for message in supervisor.payloads("session")]


def test_sigterm_closes_the_session_finishes_the_segment_and_flushes_the_outbox(
    tmp_path, scenario_video, models_dir, mosquitto, supervisor
):
    server = NotifySocket(str(tmp_path / "notify"))
    data = tmp_path / "data"
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(
        tmp_path, models_dir, scenario_video, camera={"loop": True},
        session={"auto_start": True, "candidate_id": "c-9"}, mqtt={"port": mosquitto.port},
    ))
    logs = tmp_path / "logs"  # what LogsDirectory= creates
    logs.mkdir()
    environment = os.environ | {
        "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000", "LOGS_DIRECTORY": str(logs)
    }
    daemon = start_proctord(config, tmp_path / "daemon.log", env=environment)
    received: list[str] = []

    def receive() -> list[str]:
        received.extend(server.received())
        return received

    try:
        wait_until(lambda: receive() and received[0].startswith("READY=1\nSTATUS="), 90, "READY")
        assert re.fullmatch(r"READY=1\nSTATUS=proctoring: session [\w-]+; camera online", received[0])
        wait_until(lambda: receive().count("WATCHDOG=1") >= 2, 20, "watchdog pings")
        wait_until(lambda: session_kinds(supervisor) == ["start"], 20, "the session start on the broker")
        # Long enough for the recording to have frames and a no-face alert to be open (3-7 s of the video).
        wait_until(lambda: any(m.startswith("STATUS=alert: no_face") for m in receive()), 30, "the no_face alert")

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=UNIT_STOP_TIMEOUT_S) == 0
    finally:
        kill_process(daemon)
        receive()
        server.close()

    assert received[-1] == "STOPPING=1\nSTATUS=stopping: closing the session"
    assert "WATCHDOG=1" not in received[received.index(received[-1]):]

    reader = StoreReader(data / "proctord.db")
    (session,) = reader.sessions()
    assert session.state == "interrupted" and session.ended_at is not None
    assert [event.end is not None for event in reader.events(session.id)] == [True]  # the open no_face closed
    assert reader.outbox_backlog() == 0  # flushed: the broker has everything
    wait_until(lambda: session_kinds(supervisor) == ["start", "stop"], 5, "the session stop on the broker")
    stop = supervisor.payloads("session")[-1]
    assert stop["session"]["state"] == "interrupted"

    recordings = load_config(config).recordings_dir
    segments = [media for media in reader.media(session.id) if media.kind == "segment"]
    assert segments, "the segment was not finished"
    for segment in segments:
        with av.open(str(recordings / segment.name)) as container:
            decoded = sum(1 for _ in container.decode(video=0))
        assert decoded == segment.frames > 0
    assert "Traceback" not in (tmp_path / "daemon.log").read_text()
    assert f"session {session.id} interrupted" in (logs / "proctord.log").read_text()
