"""SIGTERM to a real `proctord run` under a simulated systemd: a real notify socket in $NOTIFY_SOCKET,
a real broker, a looping video as the camera. The daemon says READY, feeds the watchdog, reports its
state, and on SIGTERM says STOPPING, closes the session as interrupted, finishes the recording segment,
flushes the outbox to the broker and exits 0 well within the unit's TimeoutStopSec."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading

import av
import paho.mqtt.client as mqtt
import pytest
from conftest import REPO, wait_until
from paho.mqtt.enums import CallbackAPIVersion
from test_notify import NotifySocket

from daemon.config import load_config
from daemon.store.db import StoreReader

UNIT_STOP_TIMEOUT_S = float(re.search(r"\nTimeoutStopSec=(\d+)\n", (REPO / "systemd/proctord.service").read_text())[1])


class SessionMessages:
    def __init__(self, port: int):
        self.received: list[dict] = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-shutdown-supervisor")
        self._client.on_connect = lambda c, *_: c.subscribe("proctor/+/+/session", qos=1)
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def _on_message(self, client, userdata, message):
        with self._lock:
            self.received.append(json.loads(message.payload))

    def kinds(self) -> list[str]:
        with self._lock:
            return [message["kind"] for message in self.received]

    def close(self):
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def supervisor(mosquitto):
    messages = SessionMessages(mosquitto.port)
    yield messages
    messages.close()


def test_sigterm_closes_the_session_finishes_the_segment_and_flushes_the_outbox(
    tmp_path, scenario_video, models_dir, mosquitto, supervisor
):
    server = NotifySocket(str(tmp_path / "notify"))
    data = tmp_path / "data"
    config = tmp_path / "proctord.toml"
    config.write_text(f"""
[paths]
data_dir = "{data}"
models_dir = "{models_dir}"
[camera]
kind = "file"
path = "{scenario_video}"
loop = true
[session]
auto_start = true
candidate_id = "c-9"
[mqtt]
port = {mosquitto.port}
[web]
enabled = false
""")
    logs = tmp_path / "logs"  # what LogsDirectory= creates
    logs.mkdir()
    environment = os.environ | {
        "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000", "LOGS_DIRECTORY": str(logs)
    }
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "run", "--config", str(config)],
        cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT,
    )
    received: list[str] = []

    def receive() -> list[str]:
        received.extend(server.received())
        return received

    try:
        wait_until(lambda: receive() and received[0].startswith("READY=1\nSTATUS="), 90, "READY")
        assert re.fullmatch(r"READY=1\nSTATUS=proctoring: session [\w-]+; camera online", received[0])
        wait_until(lambda: receive().count("WATCHDOG=1") >= 2, 20, "watchdog pings")
        wait_until(lambda: supervisor.kinds() == ["start"], 20, "the session start on the broker")
        # Long enough for the recording to have frames and a no-face alert to be open (3-7 s of the video).
        wait_until(lambda: any(m.startswith("STATUS=alert: no_face") for m in receive()), 30, "the no_face alert")

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=UNIT_STOP_TIMEOUT_S) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        receive()
        server.close()
        log.close()

    assert received[-1] == "STOPPING=1\nSTATUS=stopping: closing the session"
    assert "WATCHDOG=1" not in received[received.index(received[-1]):]

    reader = StoreReader(data / "proctord.db")
    (session,) = reader.sessions()
    assert session.state == "interrupted" and session.ended_at is not None
    assert [event.end is not None for event in reader.events(session.id)] == [True]  # the open no_face closed
    assert reader.outbox_backlog() == 0  # flushed: the broker has everything
    stop = wait_until(lambda: supervisor.received[-1] if supervisor.kinds() == ["start", "stop"] else None,
                      5, "the session stop on the broker")
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
