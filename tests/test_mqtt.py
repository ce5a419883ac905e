"""The MQTT outbox against a real mosquitto: payloads, a drain cut by the broker, refusals, TLS and passwords.

The window's rules (order, resends after a reconnection, refusals) are unit-tested in test_outbox_window.py;
the one real-broker drain test here stops the broker with messages in flight both ways.

The kiosk side here is the real store (SQLite file, store thread) and the real publisher; only the
camera and the rules are left out: alerts are committed the way the session controller commits them.
"""

from __future__ import annotations

import json
import logging
import subprocess
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import Mosquitto, free_port, wait_until
from mqtt_helpers import KIOSK, SITE, Kiosk, Supervisor
from paho.mqtt.enums import CallbackAPIVersion

from daemon.config import ConfigError, MqttConfig, parse_config
from daemon.credentials import CredentialError
from daemon.errors import UserError
from daemon.events.model import Event, EventChange
from daemon.store.db import Store
from daemon.store.records import OutboxMessage
from daemon.store.writer import StoreWriter
from daemon.sync.connection import BrokerSettings
from daemon.sync.contract import KioskStatus, Topics

# A broker that keeps the supervisor's session and its queued messages across its own restart, with no
# cap on that queue (mosquitto's default of 1000 would drop part of a large backlog for the supervisor).
PERSISTENT = "allow_anonymous true\npersistence true\npersistence_location {dir}/\nmax_queued_messages 0\n"


@pytest.fixture
def brokers(tmp_path):
    """Brokers made by the test; requested before `kiosks`, so they stop after the kiosks have."""
    made: list[Mosquitto] = []

    def make(settings: str = Mosquitto.ANONYMOUS, start: bool = True) -> Mosquitto:
        made.append(Mosquitto(tmp_path, settings=settings))
        return made[-1].start() if start else made[-1]

    yield make
    for broker in made:
        broker.stop()


@pytest.fixture
def kiosks(tmp_path):
    made: list[Kiosk] = []

    def make(port: int, **options) -> Kiosk:
        kiosk = Kiosk(tmp_path, port, **options)
        made.append(kiosk)
        return kiosk

    yield make
    for kiosk in made:
        kiosk.close()


@pytest.fixture
def supervisors():
    made: list[Supervisor] = []

    def make(port: int, **options) -> Supervisor:
        made.append(Supervisor(port, **options))
        return made[-1]

    yield make
    for supervisor in made:
        supervisor.close()


def delivery(received: list[str], sent: list[str]) -> tuple[list[str], int, bool]:
    """(ids missing, duplicates, whether first arrivals kept the sending order)."""
    first_arrivals = list(dict.fromkeys(received))
    missing = [i for i in sent if i not in set(received)]
    in_order = [i for i in first_arrivals if i in set(sent)] == [i for i in sent if i in set(received)]
    return missing, len(received) - len(first_arrivals), in_order


def alert_ids(supervisor: Supervisor) -> list[str]:
    return [payload["id"] for payload in supervisor.payloads("alert")]


def test_alerts_arrive_with_the_contract_payloads_and_the_status_is_retained(mosquitto, kiosks, supervisors):
    supervisor = supervisors(mosquitto.port)
    kiosk = kiosks(mosquitto.port)
    event = Event("ev-1", kiosk.session.id, "multiple_faces", "high", 1000.0, None, 0.8, {"faces": 2})
    for change in (EventChange("start", event), EventChange("end", event.ended(1004.5, 0.95, {"faces": 2}))):
        kiosk.writer.submit(lambda store, change=change: store.record_event(change, [kiosk.topics.alert_message(change)]))
    kiosk.publisher.wake()

    start, end = wait_until(lambda: len(a := supervisor.payloads("alert")) == 2 and a, 10, "two alerts")
    assert start == {
        "v": 1, "id": "ev-1:start", "kind": "start", "reason": None, "site": SITE, "kiosk": KIOSK,
        "session_id": kiosk.session.id,
        "event": {"id": "ev-1", "session_id": kiosk.session.id, "type": "multiple_faces", "severity": "high",
                  "start": 1000.0, "end": None, "peak_confidence": 0.8, "evidence": {"faces": 2}},
    }
    assert (end["id"], end["kind"], end["reason"], end["event"]["end"], end["event"]["peak_confidence"]) == \
        ("ev-1:end", "end", "cleared", 1004.5, 0.95)
    assert [m.topic for m in supervisor.messages("alert")] == [f"proctor/{SITE}/{KIOSK}/alert"] * 2
    wait_until(lambda: kiosk.backlog() == 0, 10, "the acknowledged alerts to leave the outbox")

    # A console that connects later gets the retained status at once.
    late = supervisors(mosquitto.port, topic=f"proctor/{SITE}/{KIOSK}/status", client_id="late")
    status = wait_until(lambda: late.messages("status"), 10, "the retained status")[-1]
    assert status.retained
    assert status.payload | {"at": None} == {
        "v": 1, "site": SITE, "kiosk": KIOSK, "state": "online", "at": None, "reason": None,
        "version": "test-version", "session_id": kiosk.session.id,
        "session": {"id": kiosk.session.id, "candidate_name": "Ada", "candidate_id": "c-1", "exam_id": "exam-1",
                    "started_at": kiosk.session.started_at},
        "camera_ok": True, "fps": 15.0, "outbox_backlog": status.payload["outbox_backlog"],
        "store": {"state": "ok", "reason": None, "pending_writes": 0, "write_failures": 0},
        "upload": {"state": "off", "reason": "upload.enabled is false", "backlog": 0, "bytes_pending": 0,
                   "missing": 0, "last_upload_at": None, "last_error": None},
    }


def test_a_broker_stopped_while_alerts_are_in_flight_loses_none_and_keeps_their_order(
    tmp_path, brokers, kiosks, supervisors
):
    broker = brokers(PERSISTENT.format(dir=tmp_path))
    supervisor = supervisors(broker.port, persistent=True)
    kiosk = kiosks(broker.port)
    wait_until(lambda: supervisor.messages("status"), 10, "the kiosk to be online")
    broker.stop()
    sent = kiosk.queue_alerts(2000)  # a backlog, so the drain below runs at full speed
    under_way = supervisor.when_received(len(supervisor.messages()) + 300)
    broker.start()
    assert under_way.wait(30), "the drain did not start"
    broker.stop()  # with messages in flight both ways
    arrived_before = len(alert_ids(supervisor))
    assert arrived_before < len(sent)
    broker.start()
    wait_until(lambda: len(set(alert_ids(supervisor))) == len(sent), 60, "every alert")
    wait_until(lambda: kiosk.backlog() == 0, 10, "the outbox to empty")
    missing, duplicates, in_order = delivery(alert_ids(supervisor), sent)
    print(f"\nbroker stopped mid-drain after {arrived_before} of {len(sent)} alerts: {len(missing)} missing, "
          f"{duplicates} duplicates (same id, dropped by the supervisor), first arrivals in order: {in_order}")
    assert missing == [] and in_order


def test_a_message_the_broker_refuses_stays_in_the_outbox_and_the_rest_go_on(
    tmp_path, brokers, kiosks, supervisors, caplog
):
    acl = tmp_path / "acl"
    acl.write_text(f"topic readwrite proctor/{SITE}/{KIOSK}/#\n")
    broker = brokers(f"allow_anonymous true\npersistence false\nacl_file {acl}\n")
    supervisor = supervisors(broker.port, topic=f"proctor/{SITE}/{KIOSK}/#")
    writer = StoreWriter(Store(tmp_path / "proctord.db", kiosk=KIOSK))
    writer.submit(lambda store: store.enqueue([OutboxMessage("foreign:1", "proctor/other-site/x/alert", "{}")])).result()
    writer.close()
    with caplog.at_level(logging.ERROR, logger="daemon.sync.mqtt"):
        kiosk = kiosks(broker.port)
        ids = kiosk.raise_alerts(3)
        wait_until(lambda: len(alert_ids(supervisor)) == 3, 10, "the alerts behind the refused message")
        wait_until(lambda: kiosk.backlog() == 1, 10, "the outbox to keep only the refused message")
    assert alert_ids(supervisor) == ids
    assert [m.message_id for m in kiosk.reader.outbox()] == ["foreign:1"]
    assert "refused foreign:1" in caplog.text and "Not authorized" in caplog.text


def test_tls_and_a_password_from_a_systemd_credential(tmp_path, brokers, kiosks, supervisors, monkeypatch, caplog):
    ca, cert, key = _certificates(tmp_path)
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(tmp_path / "passwd"), "kiosk-1", "s3cret-pw"], check=True)
    tls_port = free_port()
    broker = brokers(
        f"allow_anonymous false\npassword_file {tmp_path / 'passwd'}\npersistence false\n"
        f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
    )
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt-password").write_text("s3cret-pw\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    config = MqttConfig(port=tls_port, tls=True, ca_file=str(ca), username="kiosk-1",
                        password_file="mqtt-password", reconnect_max_s=1)
    supervisor = supervisors(broker.port, username="kiosk-1", password="s3cret-pw")
    with caplog.at_level(logging.DEBUG):
        kiosk = kiosks(broker.port, settings=BrokerSettings.from_config(config))
        ids = kiosk.raise_alerts(2)
        wait_until(lambda: alert_ids(supervisor) == ids, 15, "the alerts over TLS")
    assert "mqtts://127.0.0.1" in caplog.text and "s3cret-pw" not in caplog.text
    assert "s3cret-pw" not in repr(BrokerSettings.from_config(config))


def test_credential_and_tls_problems_name_the_key(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(CredentialError, match=r"mqtt.password_file: 'pw' is a credential name but \$CREDENTIALS_"):
        BrokerSettings.from_config(MqttConfig(username="u", password_file="pw"))
    with pytest.raises(CredentialError, match=f"mqtt.password_file: cannot read {tmp_path}/missing"):
        BrokerSettings.from_config(MqttConfig(username="u", password_file=str(tmp_path / "missing")))
    with pytest.raises(UserError, match=f"mqtt.ca_file: {tmp_path}/ca.pem is not a readable file"):
        BrokerSettings.from_config(MqttConfig(tls=True, ca_file=str(tmp_path / "ca.pem")))

    with pytest.raises(ConfigError) as bad:
        parse_config('[mqtt]\nca_file = "/etc/ca.pem"\nkey_file = "k.pem"\npassword_file = "pw"\n'
                     'commands = ["ping", "reboot"]\n')
    assert bad.value.problems == [
        "mqtt.ca_file: '/etc/ca.pem' is not allowed: needs tls = true",
        "mqtt.key_file: 'k.pem' is not allowed: needs tls = true",
        "mqtt.password_file: 'pw' is not allowed: needs username",
        ("mqtt.commands.1: 'reboot' is not allowed: Input should be 'ping', 'snapshot', 'start_session' or"
         " 'stop_session'"),
    ]


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl command."""
    ca_key, ca, key, csr, cert = (directory / name for name in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                                  "server.pem"))

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
        "-keyout", str(ca_key), "-out", str(ca))
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    extensions = directory / "san.ext"
    extensions.write_text("subjectAltName = IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "1",
        "-extfile", str(extensions), "-out", str(cert))
    return ca, cert, key


def test_status_payload_is_json_with_every_documented_key():
    topics = Topics("proctor", SITE, KIOSK)
    online = json.loads(topics.status_payload(KioskStatus("1.0", None, False, 0.0), 5.0, 3))
    offline = json.loads(topics.offline_payload(None, "connection lost"))
    assert online.keys() == offline.keys()
    assert (online["state"], online["outbox_backlog"], offline["state"], offline["reason"]) == \
        ("online", 3, "offline", "connection lost")


def test_the_documented_acls_confine_each_kiosk_to_its_own_topics(tmp_path, brokers, kiosks, supervisors):
    passwords = tmp_path / "passwd"
    for n, user in enumerate((f"{SITE}/{KIOSK}", f"{SITE}/kiosk-2", "supervisor")):
        create = ["-c"] if n == 0 else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(passwords), user, f"pw-{user}"], check=True)
    acl = Path(__file__).resolve().parents[1] / "docs/mosquitto-acl.conf"
    broker = brokers(f"allow_anonymous false\npersistence false\npassword_file {passwords}\nacl_file {acl}\n")
    supervisor = supervisors(broker.port, username="supervisor", password="pw-supervisor")
    kiosk = kiosks(broker.port, settings=BrokerSettings(
        "127.0.0.1", broker.port, reconnect_max_s=1, username=f"{SITE}/{KIOSK}", password=f"pw-{SITE}/{KIOSK}"))
    ids = kiosk.raise_alerts(2)
    wait_until(lambda: alert_ids(supervisor) == ids, 10, "the kiosk's own alerts")
    wait_until(lambda: supervisor.payloads("status"), 10, "the kiosk's status")

    def publish_as(user: str, topic: str) -> str:
        """The broker's answer (PUBACK reason) to `user` publishing on `topic`."""
        answers: list[str] = []
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}",
                             protocol=mqtt.MQTTv5)
        client.username_pw_set(user, f"pw-{user}")
        client.on_publish = lambda c, u, mid, reason, p: answers.append(str(reason))
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        try:
            client.publish(topic, "{}", qos=1).wait_for_publish(5)
            return wait_until(lambda: answers, 5, "the PUBACK")[0]
        finally:
            client.disconnect()
            client.loop_stop()

    other_kiosk = f"{SITE}/kiosk-2"
    assert publish_as(other_kiosk, f"proctor/{other_kiosk}/alert") != "Not authorized"
    assert publish_as(other_kiosk, f"proctor/{SITE}/{KIOSK}/alert") == "Not authorized"
    assert publish_as(other_kiosk, f"proctor/{SITE}/{KIOSK}/cmd") == "Not authorized"
    assert publish_as("supervisor", f"proctor/{SITE}/{KIOSK}/alert") == "Not authorized"
    assert publish_as("supervisor", f"proctor/{SITE}/{KIOSK}/cmd") != "Not authorized"
