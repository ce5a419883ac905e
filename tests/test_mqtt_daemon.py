"""`proctord run` as a real process with a real mosquitto that goes away: during a session, across a
kill -9 of the daemon, and the last will when the daemon dies. The scenario video raises no_face and
multiple_faces (a start and an end each) in its 16 s."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import Mosquitto, daemon_config, kill_process, start_proctord, wait_until
from mqtt_helpers import Supervisor

from daemon.store.db import StoreReader

SITE, KIOSK = "site-d", "kiosk-9"
PERSISTENT = "allow_anonymous true\npersistence true\npersistence_location {dir}/\nmax_queued_messages 0\n"
EXPECTED_ALERTS = [("no_face", "start"), ("no_face", "end"), ("multiple_faces", "start"), ("multiple_faces", "end")]


class Daemon:
    def __init__(self, workdir: Path, video: Path, models_dir: Path, mqtt_port: int):
        self.data = workdir / "data"
        self.config = workdir / "proctord.toml"
        self.config.write_text(daemon_config(
            workdir, models_dir, video, kiosk={"site": SITE, "name": KIOSK},
            session={"auto_start": True, "candidate_id": "c-7"},
            mqtt={"port": mqtt_port, "reconnect_max_s": 1},
        ))
        self.log = workdir / "daemon.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Daemon:
        self.process = start_proctord(self.config, self.log)
        return self

    def outbox(self) -> list[str]:
        """The message ids waiting in the daemon's SQLite outbox, read from the file."""
        if not (self.data / "proctord.db").exists():
            return []
        try:
            return [m.message_id for m in StoreReader(self.data / "proctord.db").outbox(limit=1000)]
        except sqlite3.OperationalError:  # the file is there, its tables not yet
            return []

    def kill(self) -> None:
        if self.process:
            kill_process(self.process)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def daemon(tmp_path, scenario_video, models_dir):
    made = []

    def make(port: int) -> Daemon:
        made.append(Daemon(tmp_path, scenario_video, models_dir, port))
        return made[-1]

    yield make
    for started in made:
        started.kill()


def kinds(alerts: list[dict]) -> list[tuple[str, str]]:
    return [(a["event"]["type"], a["kind"]) for a in alerts]


def test_alerts_raised_while_the_broker_is_down_arrive_in_order_and_the_last_will_says_offline(
    tmp_path, daemon
):
    broker = Mosquitto(tmp_path, settings=PERSISTENT.format(dir=tmp_path)).start()
    supervisor = Supervisor(broker.port, persistent=True)
    try:
        kiosk = daemon(broker.port).start()
        wait_until(lambda: supervisor.payloads("session"), 60, "the session start message")
        broker.stop()  # the session goes on without a broker
        wait_until(lambda: any(i.endswith(":stop") for i in kiosk.outbox()), 60, "the session stop, queued")
        queued = kiosk.outbox()  # every alert of the session, then its stop

        broker.start()
        wait_until(lambda: len(supervisor.payloads("session")) >= 2, 30, "the queued messages")
        arrived = [m.payload["id"] for m in supervisor.messages() if m.payload.get("id") in set(queued)]
        print(f"\noutage during a session: {len(queued) - 1} alerts queued, {len(set(arrived)) - 1} arrived, "
              f"{len(arrived) - len(set(arrived))} duplicates")
        assert arrived == queued  # all, in order, none twice
        assert [k for k in kinds(supervisor.payloads("alert")) if k[0] in ("no_face", "multiple_faces")] \
            == EXPECTED_ALERTS
        assert supervisor.payloads("session")[-1]["kind"] == "stop"
        wait_until(lambda: kiosk.outbox() == [], 10, "the outbox to empty")

        wait_until(lambda: supervisor.payloads("status")[-1]["state"] == "online", 10, "the online status")
        kiosk.kill()  # no goodbye: the broker publishes the last will
        offline = wait_until(lambda: (s := supervisor.payloads("status")[-1])["state"] == "offline" and s, 10,
                             "the last will")
        assert (offline["reason"], offline["at"], offline["kiosk"]) == ("connection lost", None, KIOSK)
    finally:
        supervisor.close()
        broker.stop()


def test_a_backlog_survives_a_kill_of_the_daemon_while_the_broker_is_down(tmp_path, daemon):
    broker = Mosquitto(tmp_path)  # nothing listens on its port yet
    kiosk = daemon(broker.port).start()
    wait_until(lambda: len(kiosk.outbox()) >= 3, 60, "the session start and the first alerts, queued")
    kiosk.kill()  # SIGKILL: no shutdown, no flush
    queued = kiosk.outbox()
    assert queued[0].endswith(":start") and len(queued) >= 3

    broker.start()
    supervisor = Supervisor(broker.port)
    try:
        kiosk.start()  # the next boot: the interrupted session is closed, the backlog drains
        wait_until(lambda: set(queued) <= {p["id"] for m in ("alert", "session") for p in supervisor.payloads(m)},
                   60, "every message queued before the kill")
        arrived = [m.payload["id"] for m in supervisor.messages() if m.payload.get("id") in set(queued)]
        assert arrived == queued  # in order, none twice
        interrupted = wait_until(
            lambda: [p for p in supervisor.payloads("session")
                     if p["kind"] == "stop" and p["session"]["state"] == "interrupted"], 30, "the interrupted stop"
        )[0]
        assert interrupted["session"]["id"] == supervisor.payloads("session")[0]["session"]["id"]
        assert kiosk.terminate() == 0
    finally:
        supervisor.close()
        broker.stop()
