"""`proctord run` as a real process: a video as the camera, a real mosquitto, the web page over HTTP."""

from __future__ import annotations

import base64
import json
import signal
import urllib.request
from pathlib import Path

import pytest
from conftest import Mosquitto, daemon_config, free_port, kill_process, start_proctord, wait_until
from mqtt_helpers import Supervisor
from werkzeug.security import generate_password_hash

from daemon.store.db import StoreReader

SITE, KIOSK = "test-site", "kiosk-7"
# The scenario video is cut for these two rules; the other rules see the splices too (the desk photo is
# another view, the collage another person), which tests/test_replay.py covers.
FACE_COUNT = {"no_face", "multiple_faces"}
# The web page needs the technician password; scripts send it as HTTP Basic credentials.
WEB_PASSWORD = "technician-password"
WEB_AUTH = {"Authorization": "Basic " + base64.b64encode(f"technician:{WEB_PASSWORD}".encode()).decode()}


class DaemonProcess:
    def __init__(self, tmp_path: Path, video: Path, models_dir: Path, mqtt_port: int):
        self.web_port = free_port()
        config = tmp_path / "proctord.toml"
        config.write_text(daemon_config(
            tmp_path, models_dir, video, kiosk={"site": SITE, "name": KIOSK},
            session={"auto_start": True, "candidate_name": "Ada Lovelace", "candidate_id": "c-42",
                     "exam_id": "math-101"},
            mqtt={"port": mqtt_port},
            web={"port": self.web_port,
                 "password_hash": generate_password_hash(WEB_PASSWORD, method="pbkdf2:sha256:1000")},
        ))
        self.log = tmp_path / "daemon.log"
        self.process = start_proctord(config, self.log)

    def get(self, path: str) -> tuple[int, str]:
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}", headers=WEB_AUTH)
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def status(self) -> dict | None:
        try:
            return json.loads(self.get("/api/status")[1])
        except OSError:
            return None

    def figure(self, part: str, key: str):
        """One figure of the daemon's status snapshot, as /api/status gives it."""
        return self.status()["parts"][part]["figures"][key]["value"]

    def wait_for_state(self, state: str, timeout: float = 90) -> dict:
        return wait_until(
            lambda: (s := self.status()) and s["state"] == state and s, timeout, f"daemon state {state!r}"
        )

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def kill(self):
        kill_process(self.process)


@pytest.fixture
def start_daemon(tmp_path, scenario_video, models_dir):
    started = []

    def start(mqtt_port: int) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path, scenario_video, models_dir, mqtt_port)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()


def test_daemon_proctors_the_video_publishes_alerts_and_serves_the_report(mosquitto, start_daemon):
    supervisor = Supervisor(mosquitto.port)
    daemon = start_daemon(mosquitto.port)
    try:
        status = daemon.wait_for_state("source_ended")
        assert status["parts"]["analysis"]["figures"]["frames"]["value"] > 100
        assert status["session"] is None  # closed at the end of the video
        wait_until(lambda: daemon.figure("mqtt", "outbox_backlog") == 0, 20, "the outbox to drain")
        wait_until(lambda: len(supervisor.payloads("session")) == 2, 20, "session start and stop messages")

        alerts = [a for a in supervisor.payloads("alert") if a["event"]["type"] in FACE_COUNT]
        assert [(a["event"]["type"], a["kind"]) for a in alerts] == [
            ("no_face", "start"), ("no_face", "end"), ("multiple_faces", "start"), ("multiple_faces", "end"),
        ]
        assert len({a["id"] for a in alerts}) == 4
        assert all(a["site"] == SITE and a["kiosk"] == KIOSK and a["event"]["severity"] == "high" for a in alerts)
        start, stop = supervisor.payloads("session")
        assert (start["kind"], stop["kind"]) == ("start", "stop")
        assert start["session"]["candidate_id"] == "c-42"
        counts = stop["summary"]["event_counts"]
        assert {t: n for t, n in counts.items() if t in FACE_COUNT} == {"multiple_faces": 1, "no_face": 1}
        assert supervisor.payloads("status")[-1]["state"] == "online"

        session_id = start["session"]["id"]
        code, page = daemon.get(f"/sessions/{session_id}")
        assert code == 200 and "Ada Lovelace" in page and "Several faces" in page
        code, body = daemon.get(f"/api/sessions/{session_id}/report.json")
        assert code == 200 and json.loads(body)["integrity"]["score"] == stop["summary"]["integrity_score"]
        assert daemon.get("/sessions/no-such-session")[0] == 404
        assert daemon.get("/healthz") == (200, '{"ok":true}\n')

        assert daemon.terminate() == 0
        wait_until(lambda: supervisor.payloads("status")[-1]["state"] == "offline", 10, "the offline status")
    finally:
        supervisor.close()


def test_daemon_keeps_proctoring_without_a_broker_and_keeps_every_message_for_later(tmp_path, start_daemon):
    # How the backlog drains once the broker is back: test_mqtt.py and test_outbox_window.py.
    broker = Mosquitto(tmp_path)  # its port is chosen, nothing listens there yet
    daemon = start_daemon(broker.port)
    try:
        status = daemon.wait_for_state("source_ended")
        assert status["parts"]["mqtt"]["figures"]["connected"]["value"] is False
        # The session ends after the video (its files closed first): then its messages are all queued,
        # session start + (start, end) alerts of every event + each event's snapshot + session stop, kept.
        wait_until(lambda: json.loads(daemon.get("/api/sessions")[1])[0]["state"] == "completed", 30, "the stop")
        [session] = json.loads(daemon.get("/api/sessions")[1])
        events = json.loads(daemon.get(f"/api/sessions/{session['id']}/report.json")[1])["events"]
        media = StoreReader(tmp_path / "data" / "proctord.db").media(session["id"])
        snapshots = sum(1 for m in media if m.kind == "snapshot" and m.event_id)
        expected = 2 + 2 * len(events) + snapshots
        wait_until(lambda: daemon.figure("mqtt", "outbox_backlog") == expected, 5, "the stop message")

        broker.start()
        supervisor = Supervisor(broker.port)
        wait_until(lambda: daemon.figure("mqtt", "outbox_backlog") == 0, 60, "the backlog to drain")
        wait_until(lambda: len(supervisor.payloads("alert")) == 2 * len(events), 10, "the queued alerts")
        alerts = [a for a in supervisor.payloads("alert") if a["event"]["type"] in FACE_COUNT]
        kinds = [(a["event"]["type"], a["kind"]) for a in alerts]
        assert kinds == [
            ("no_face", "start"), ("no_face", "end"), ("multiple_faces", "start"), ("multiple_faces", "end"),
        ]
        supervisor.close()
        assert daemon.terminate() == 0
    finally:
        broker.stop()
