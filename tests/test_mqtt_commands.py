"""Remote commands over a real mosquitto, run against the real session controller and store."""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from pathlib import Path

import cv2
import paho.mqtt.client as mqtt
import pytest
from conftest import wait_until
from mqtt_helpers import Supervisor
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from daemon.capture.frame import Frame
from daemon.config import Config, MqttConfig, RetentionConfig, RulesConfig
from daemon.events.rules import Instant
from daemon.recording.disk import DiskSpace
from daemon.recording.retention import Retention
from daemon.recording.service import RecordingService
from daemon.session import SessionController
from daemon.store.db import Store, StoreReader
from daemon.store.verify import verify
from daemon.store.writer import StoreWriter
from daemon.sync.commands import CommandActions
from daemon.sync.contract import KioskStatus, Topics
from daemon.sync.mqtt import MqttPublisher

SITE, KIOSK = "site-a", "kiosk-1"
TOPICS = Topics("proctor", SITE, KIOSK)
_request_ids = (f"r-{n}" for n in itertools.count())


class CommandedKiosk:
    def __init__(self, data: Path, port: int, frame: Frame | None, **mqtt_options):
        self.writer = StoreWriter(Store(data / "proctord.db", kiosk=KIOSK))
        self.reader = StoreReader(data / "proctord.db")
        self.sessions = SessionController(RulesConfig(), self.writer, TOPICS,
                                          on_committed=lambda: self.publisher.wake())
        config = Config(paths={"data_dir": str(data)}, retention={"min_free_mb": 0})
        self.recording = RecordingService(config, self.writer, self.reader)
        self.recordings = config.recordings_dir
        actions = CommandActions(
            start_session=lambda info: self.sessions.start(info, Instant(time.monotonic(), time.time())),
            stop_session=lambda: self.sessions.stop(),
            latest_frame=lambda: frame,
            status=lambda: KioskStatus("test-version", self.sessions.active, True, 10.0),
            save_snapshot=lambda frame: self.recording.take_snapshot(frame, self.sessions.active),
        )
        config = MqttConfig(port=port, reconnect_max_s=1, **mqtt_options)
        self.publisher = MqttPublisher.from_config(
            config, TOPICS, self.reader, lambda ids: self.writer.submit(lambda store: store.ack(ids)), actions
        )
        self.publisher.start()

    def close(self) -> None:
        self.publisher.stop(flush_timeout=0)
        self.writer.close()


@pytest.fixture
def frame(shared) -> Frame:
    image = cv2.imread(str(shared / "media/images/coco/coco_val2017_000000017182.jpg"))
    return Frame(image, seq=7, mono=1.0, wall=1_700_000_000.0)


@pytest.fixture
def start_kiosk(tmp_path, mosquitto):
    made = []

    def start(frame: Frame | None = None, **mqtt_options) -> CommandedKiosk:
        made.append(CommandedKiosk(tmp_path, mosquitto.port, frame, **mqtt_options))
        wait_until(lambda: made[-1].publisher.listening, 10, "the kiosk to listen for commands")
        return made[-1]

    yield start
    for kiosk in made:
        kiosk.close()


@pytest.fixture
def operator(mosquitto):
    supervisor = Supervisor(mosquitto.port, topic=[TOPICS.command_result, TOPICS.session], client_id="operator")
    yield Operator(supervisor)
    supervisor.close()


class Operator:
    """A supervisor sending commands and reading their results."""

    def __init__(self, supervisor: Supervisor):
        self.supervisor = supervisor

    def send(self, command: dict | str | bytes, retain: bool = False) -> dict:
        """Send one command and wait for its result."""
        sent = len(self.supervisor.messages("result"))
        payload = command if isinstance(command, str | bytes) else json.dumps(command)
        self.supervisor.publish(TOPICS.command, payload, retain=retain)
        return wait_until(lambda: self.results()[sent:], 10, "the command result")[0]

    def command(self, name: str, **fields) -> dict:
        return self.send({"request_id": next(_request_ids), "command": name, **fields})

    def results(self) -> list[dict]:
        return self.supervisor.payloads("result")


def test_session_commands_start_and_stop_a_session(start_kiosk, operator):
    kiosk = start_kiosk()
    started = operator.command("start_session", candidate_id="c-9", candidate_name="Grace Hopper",
                               exam_id="cobol-1", notes="seat 4")
    assert started["ok"] and started["error"] is None and started["command"] == "start_session"
    session = started["result"]["session"]
    assert (session["candidate_name"], session["candidate_id"], session["exam_id"], session["notes"], session["state"]) \
        == ("Grace Hopper", "c-9", "cobol-1", "seat 4", "running")
    assert [s.id for s in kiosk.reader.sessions()] == [session["id"]]

    again = operator.command("start_session", candidate_id="c-10")
    assert again["ok"] is False
    assert again["error"] == {"code": "refused", "reason": f"session {session['id']} is already running"}
    assert len(kiosk.reader.sessions()) == 1

    wrong = operator.command("stop_session", session_id="20240101T000000-abcdef")
    assert wrong["error"]["code"] == "refused" and kiosk.sessions.active is not None

    stopped = operator.command("stop_session", session_id=session["id"])
    assert stopped["ok"] and stopped["result"]["session"]["state"] == "completed"
    assert operator.command("stop_session")["error"] == {"code": "refused", "reason": "no session is running"}
    announced = wait_until(lambda: len(p := operator.supervisor.payloads("session")) == 2 and p, 10, "session news")
    assert [(p["kind"], p["session"]["id"]) for p in announced] == [("start", session["id"]), ("stop", session["id"])]


@pytest.mark.parametrize(
    ("payload", "code", "reason"),
    [
        ("not json", "invalid", "not JSON"),
        ("[1, 2]", "invalid", "a command is a JSON object"),
        ('{"request_id": "r", "command": "reboot"}', "invalid",
         "command: 'reboot' is not one of ping, snapshot, start_session, stop_session"),
        ('{"request_id": "r", "command": "start_session"}', "invalid", "candidate_id: Field required"),
        ('{"request_id": "r", "command": "start_session", "candidate_id": "c", "shell": "rm -rf /"}', "invalid",
         "shell: Extra inputs are not permitted"),
        ('{"request_id": "r", "command": "start_session", "candidate_id": 42}', "invalid",
         "candidate_id: Input should be a valid string"),
        ('{"request_id": "bad id!", "command": "ping"}', "invalid", "request_id: String should match pattern"),
        ('{"command": "ping"}', "invalid", "request_id: Field required"),
        ('{"request_id": "r", "command": "ping", "pad": "' + "x" * 20000 + '"}', "invalid", "more than 16384"),
    ],
)
def test_a_bad_command_is_answered_with_the_reason_and_changes_nothing(start_kiosk, operator, payload, code, reason):
    kiosk = start_kiosk()
    result = operator.send(payload)
    assert result["ok"] is False and result["result"] is None
    assert result["error"]["code"] == code and reason in result["error"]["reason"]
    assert kiosk.reader.sessions() == [] and kiosk.reader.outbox_backlog() == 0


def test_unauthorised_and_retained_commands_are_refused(tmp_path, start_kiosk, operator):
    (tmp_path / "token").write_text("tok-123\n")
    kiosk = start_kiosk(command_token_file=str(tmp_path / "token"), commands=["ping", "start_session"])

    assert operator.command("ping")["error"] == {"code": "unauthorised", "reason": "missing or wrong token"}
    assert operator.command("start_session", candidate_id="c", token="guess")["error"]["code"] == "unauthorised"
    assert operator.command("snapshot", token="tok-123")["error"] == {
        "code": "unauthorised", "reason": "command 'snapshot' is not enabled on this kiosk (mqtt.commands)"}
    retained = operator.send({"request_id": "kept", "command": "start_session", "candidate_id": "c",
                              "token": "tok-123"}, retain=True)
    assert retained["error"]["code"] == "refused" and "retained" in retained["error"]["reason"]
    operator.supervisor.publish(TOPICS.command, "", retain=True)  # clear it from the broker
    assert kiosk.reader.sessions() == []

    pong = operator.command("ping", token="tok-123")
    assert pong["ok"] and pong["result"] == {"version": "test-version", "session_id": None, "camera_ok": True,
                                             "fps": 10.0}
    assert "tok-123" not in json.dumps(operator.results())


def test_a_redelivered_command_runs_once_and_gets_the_same_answer(start_kiosk, operator):
    kiosk = start_kiosk()
    command = {"request_id": "once", "command": "start_session", "candidate_id": "c-1"}
    first, second = operator.send(command), operator.send(command)
    assert first["ok"] and second == first
    assert len(kiosk.reader.sessions()) == 1


def test_snapshot_command_files_are_evidence_chained_and_deleted_by_retention(start_kiosk, operator, frame):
    """Issue 13 item 8: a snapshot is the running session's evidence, recorded, chained and retained."""
    kiosk = start_kiosk(frame)
    session_id = operator.command("start_session", candidate_id="c-1")["result"]["session"]["id"]
    results = [operator.command("snapshot") for _ in range(3)]
    assert all(result["ok"] for result in results), results
    snapshot = results[0]["result"]
    path = Path(snapshot["path"])
    assert path.parent == kiosk.recordings / session_id and path.suffix == ".jpg"
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == snapshot["sha256"] and len(data) == snapshot["bytes"]
    decoded = cv2.imread(str(path))
    assert decoded.shape == frame.image.shape
    assert (snapshot["width"], snapshot["height"], snapshot["captured_at"]) == \
        (frame.width, frame.height, frame.wall)
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(Path(r["result"]["path"]).name for r in results)
    media = kiosk.reader.media(session_id)
    assert {(m.kind, m.event_id) for m in media} == {("snapshot", None)} and len(media) == 3
    assert snapshot["sha256"] in {m.sha256 for m in media}

    operator.command("stop_session")
    assert verify(kiosk.reader.path, kiosk.recordings).ok
    kiosk.writer.submit(lambda store: store.mark_synced(session_id)).result()
    retention = Retention(RetentionConfig(evidence_max_age_days=1), kiosk.reader,
                          lambda name, reason: kiosk.writer.submit(lambda s: s.record_deletion(name, reason)).result(),
                          DiskSpace(kiosk.recordings, 0), clock=Later(days=2))
    assert len(retention.run_once()) == 3
    assert list(path.parent.iterdir()) == []
    assert verify(kiosk.reader.path, kiosk.recordings).ok


class Later:
    """The clock `days` from now (retention's age limit)."""

    def __init__(self, days: float):
        self._offset = days * 86400

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time() + self._offset

    def sleep(self, seconds: float) -> None:
        raise AssertionError("not used")


def test_snapshot_without_a_session_is_refused_and_leaves_no_file(start_kiosk, operator, frame):
    kiosk = start_kiosk(frame)
    assert operator.command("snapshot")["error"] == {
        "code": "refused", "reason": "no session is running: a snapshot is kept as a running session's evidence"}
    assert not kiosk.recordings.exists() or not any(kiosk.recordings.rglob("*.jpg"))


def test_snapshot_before_the_first_frame_fails_with_the_reason(start_kiosk, operator):
    start_kiosk(frame=None)
    assert operator.command("snapshot")["error"] == {"code": "failed", "reason": "no frame has been analysed yet"}


def test_an_mqtt5_request_gets_its_correlation_data_back(start_kiosk, mosquitto):
    start_kiosk()
    answers, subscribed = [], threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="v5-operator", protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, message: answers.append(message)
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        client.subscribe(TOPICS.command_result, qos=1)
        assert subscribed.wait(10)
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = b"corr-77"
        client.publish(TOPICS.command, json.dumps({"request_id": "p-1", "command": "ping"}), qos=1,
                       properties=properties)
        [answer] = wait_until(lambda: answers, 10, "the ping result")
        assert answer.properties.CorrelationData == b"corr-77"
        assert json.loads(answer.payload)["request_id"] == "p-1"
    finally:
        client.loop_stop()
        client.disconnect()
