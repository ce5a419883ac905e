"""Remote commands over a real mosquitto, run against the real session controller and store."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
from pathlib import Path

import cv2
import paho.mqtt.client as mqtt
import pytest
from conftest import fill, wait_until
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
from daemon.sync.commands import COMMAND_JSON, CommandActions, CommandProcessor, StoreRequestLog
from daemon.sync.contract import KioskStatus, Topics
from daemon.sync.mqtt import MqttPublisher

SITE, KIOSK = "site-a", "kiosk-1"
TOPICS = Topics("proctor", SITE, KIOSK)
_request_ids = (f"r-{n}" for n in itertools.count())


CANDIDATE = {"candidate_id": "c-1", "candidate_name": "Ada Lovelace", "exam_id": "maths-1"}


class CommandedStore:
    """The store and session controller commands act on, as service.py wires them."""

    def __init__(self, data: Path, frame: Frame | None = None, on_committed=lambda: None):
        self.writer = StoreWriter(Store(data / "proctord.db", kiosk=KIOSK))
        self.reader = StoreReader(data / "proctord.db")
        self.sessions = SessionController(RulesConfig(), self.writer, TOPICS, on_committed=on_committed)
        config = Config(paths={"data_dir": str(data)}, retention={"min_free_mb": 0})
        self.recording = RecordingService(config, self.writer, self.reader)
        self.recordings = config.recordings_dir
        self.actions = CommandActions(
            start_session=lambda info: self.sessions.start(info, Instant(time.monotonic(), time.time())),
            stop_session=lambda: self.sessions.stop(),
            latest_frame=lambda: frame,
            status=lambda: KioskStatus("test-version", self.sessions.active, True, 10.0),
            save_snapshot=lambda frame: self.recording.take_snapshot(frame, self.sessions.active),
            requests=StoreRequestLog(self.writer, self.reader, kept_s=MqttConfig().command_ids_kept_s),
        )

    def processor(self, **options) -> CommandProcessor:
        return CommandProcessor(TOPICS, self.actions, list(MqttConfig().commands), **options)

    def close(self) -> None:
        self.writer.close()


class CommandedKiosk(CommandedStore):
    def __init__(self, data: Path, port: int, frame: Frame | None, **mqtt_options):
        super().__init__(data, frame, on_committed=lambda: self.publisher.wake())
        config = MqttConfig(port=port, reconnect_max_s=1, **mqtt_options)
        self.publisher = MqttPublisher.from_config(
            config, TOPICS, self.reader, lambda ids: self.writer.submit(lambda store: store.ack(ids)), self.actions
        )
        self.publisher.start()

    def close(self) -> None:
        self.publisher.stop(flush_timeout=0)
        super().close()


@pytest.fixture
def commanded(tmp_path):
    """Commands handled directly, without a broker: for what does not depend on the transport."""
    store = CommandedStore(tmp_path)
    yield store
    store.close()


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

    again = operator.command("start_session", **CANDIDATE)
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


DEEP = '{"request_id": "r", "command": "ping", "x": ' + "[" * 1100 + "]" * 1100 + "}"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        ("[1, 2]", "a command is a JSON object"),
        ('{"request_id": "r", "command": "reboot"}',
         "command: 'reboot' is not one of ping, snapshot, start_session, stop_session"),
        ('{"request_id": "r", "command": "start_session"}', "candidate_id: Field required"),
        ('{"request_id": "r", "command": "start_session", "candidate_id": "c", "shell": "rm -rf /"}',
         "shell: Extra inputs are not permitted"),
        ('{"request_id": "r", "command": "start_session", "candidate_id": 42}', "candidate_id: Input should be a valid string"),
        ('{"request_id": "bad id!", "command": "ping"}', "request_id: use letters, digits and _ . : - only"),
        ('{"command": "ping"}', "request_id: Field required"),
        ('{"request_id": "r", "command": "ping", "pad": "' + "x" * COMMAND_JSON.max_bytes + '"}',
         f"more than {COMMAND_JSON.max_bytes}"),
        # issue 13, item 3: payloads that got no answer at all, or were accepted
        (DEEP, "nested more than 4 deep"),
        ('{"request_id": "r", "command": "ping", "n": ' + "9" * 5000 + "}", "a number of 5000 characters, more than 20"),
        ('{"request_id": "r", "command": "ping", "token": "\\ud800"}', "lone UTF-16 surrogate"),
        ('{"v": true, "request_id": "r", "command": "ping"}', "v: must be the number 1"),
        ('{"v": 1.0, "request_id": "r", "command": "ping"}', "v: must be the number 1"),
        ('{"request_id": "r", "command": "ping", "command": "stop_session"}', "the key 'command' appears twice"),
        ('{"request_id": "r", "command": "ping", "n": NaN}', "NaN is not a JSON number"),
    ],
)
def test_item3_a_bad_command_is_answered_with_the_reason_and_changes_nothing(commanded, payload, reason):
    answer = json.loads(commanded.processor().handle(payload if isinstance(payload, bytes) else payload.encode()))
    assert answer["ok"] is False and answer["result"] is None
    assert answer["error"]["code"] == "invalid" and reason in answer["error"]["reason"], answer["error"]
    assert commanded.reader.sessions() == [] and commanded.reader.outbox_backlog() == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("candidate_name", "Ada\x00"), ("candidate_name", "Ada\r\nINFO forged"), ("candidate_name", "Ada\u202eexe.txt"),
     ("exam_id", "../etc"), ("notes", "seat ../../4"), ("candidate_id", "c" * 65), ("notes", "\x1b[2J")],
)
def test_item5_mqtt_start_session_refuses_what_the_web_form_refuses(commanded, field, value):
    answer = json.loads(commanded.processor().handle(json.dumps(
        {"request_id": "r-1", "command": "start_session", **CANDIDATE, field: value}).encode()))
    assert answer["error"]["code"] == "invalid" and answer["error"]["reason"].startswith(f"{field}: ")
    assert commanded.reader.sessions() == []


def test_item3_over_the_broker_a_deep_or_huge_number_payload_is_answered(start_kiosk, operator):
    start_kiosk()
    assert "nested more than 4 deep" in operator.send(DEEP)["error"]["reason"]
    huge = operator.send('{"request_id": "big", "command": "ping", "n": ' + "1" * 5000 + "}")
    assert huge["request_id"] == "big" and "a number of 5000 characters" in huge["error"]["reason"]
    assert operator.command("ping")["ok"]


def test_unauthorised_and_retained_commands_are_refused(tmp_path, start_kiosk, operator):
    (tmp_path / "token").write_text("tok-123\n")
    kiosk = start_kiosk(command_token_file=str(tmp_path / "token"), commands=["ping", "start_session"])

    assert operator.command("ping")["error"] == {"code": "unauthorised", "reason": "missing or wrong token"}
    assert operator.command("start_session", **CANDIDATE, token="guess")["error"]["code"] == "unauthorised"
    assert operator.command("snapshot", token="tok-123")["error"] == {
        "code": "unauthorised", "reason": "command 'snapshot' is not enabled on this kiosk (mqtt.commands)"}
    retained = operator.send({"request_id": "kept", "command": "start_session", **CANDIDATE,
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
    command = {"request_id": "once", "command": "start_session", **CANDIDATE}
    first, second = operator.send(command), operator.send(command)
    assert first["ok"] and second == first
    assert len(kiosk.reader.sessions()) == 1


def _send(processor: CommandProcessor, request_id: str, command: str, **fields) -> dict:
    return json.loads(processor.handle(json.dumps({"request_id": request_id, "command": command, **fields}).encode()))


def test_item3_a_request_id_is_remembered_in_the_database_past_300_commands_and_a_restart(tmp_path):
    kiosk = CommandedStore(tmp_path)
    processor = kiosk.processor()
    first = _send(processor, "r-a", "start_session", **CANDIDATE)
    stopped = _send(processor, "stop-1", "stop_session")
    assert first["ok"] and stopped["ok"]
    for n in range(300):
        _send(processor, f"p-{n}", "ping")
    second = _send(processor, "r-b", "start_session", **CANDIDATE | {"candidate_id": "c-2"})
    assert _send(processor, "stop-1", "stop_session") == stopped  # re-sent: answered as before, not run
    assert kiosk.sessions.active.id == second["result"]["session"]["id"]  # the second session still runs
    kiosk.close()

    restarted = CommandedStore(tmp_path)  # a new daemon on the same database
    try:
        assert _send(restarted.processor(), "r-a", "start_session", **CANDIDATE) == first
        assert len(restarted.reader.sessions()) == 2
    finally:
        restarted.close()


def test_item3_a_first_invalid_try_does_not_poison_its_id(commanded):
    processor = commanded.processor()
    assert _send(processor, "fix-1", "start_session", candidate_id="c 1")["error"]["code"] == "invalid"
    corrected = _send(processor, "fix-1", "start_session", **CANDIDATE)
    assert corrected["ok"] and len(commanded.reader.sessions()) == 1
    # A wrong token does not take the id either.
    guarded = commanded.processor(token="tok-9")
    assert _send(guarded, "tok-1", "ping", token="guess")["error"]["code"] == "unauthorised"
    assert _send(guarded, "tok-1", "ping", token="tok-9")["ok"]


def test_item3_an_id_reused_for_another_command_is_refused(commanded):
    processor = commanded.processor()
    assert _send(processor, "same", "ping")["ok"]
    reused = _send(processor, "same", "stop_session")
    assert reused["error"] == {"code": "refused", "reason": "request_id same was used for another command; use a new id"}


def test_item3_control_characters_are_escaped_in_the_log(commanded, caplog):
    caplog.set_level(logging.INFO, "daemon.sync.commands")
    commanded.processor().handle(json.dumps({"request_id": "x\nINFO forged line", "command": "ping\r\x1b[2J",
                                              "candidate\u202e": 1}).encode())
    assert caplog.records and all("\n" not in r.getMessage() and "\x1b" not in r.getMessage()
                                  and "\u202e" not in r.getMessage() for r in caplog.records)
    assert "x\\nINFO forged line" in caplog.text


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_item3_retained_commands_are_refused_under_both_protocols(start_kiosk, operator, protocol):
    kiosk = start_kiosk(protocol=protocol)
    started = operator.command("start_session", **CANDIDATE)
    assert started["ok"]
    for command in ({"request_id": "kept-stop", "command": "stop_session"},
                    {"request_id": "kept-start", "command": "start_session", **CANDIDATE}):
        answer = operator.send(command, retain=True)
        assert answer["error"]["code"] == "refused" and "retained" in answer["error"]["reason"]
        operator.supervisor.publish(TOPICS.command, "", retain=True)  # clear it from the broker
    assert kiosk.sessions.active.id == started["result"]["session"]["id"]
    assert len(kiosk.reader.sessions()) == 1
    assert operator.command("stop_session")["ok"]  # a live command still runs


def test_snapshot_command_files_are_evidence_chained_and_deleted_by_retention(start_kiosk, operator, frame):
    """Issue 13 item 8: a snapshot is the running session's evidence, recorded, chained and retained."""
    kiosk = start_kiosk(frame)
    session_id = operator.command("start_session", **CANDIDATE)["result"]["session"]["id"]
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



def test_item2_start_session_on_a_full_disk_is_answered_with_the_reason(small_disk):
    kiosk = CommandedStore(small_disk)
    try:
        fill(small_disk)
        answer = _send(kiosk.processor(), "full-1", "start_session", **CANDIDATE)
        assert answer["error"]["code"] == "failed" and "could not store" in answer["error"]["reason"]
    finally:
        kiosk.close()
