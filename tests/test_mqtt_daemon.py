"""`proctord run` as a real process with a real mosquitto: kill -9 cycles with events open while the broker
is away (issue 13 item 1), and the last will when the daemon dies. The scenario video raises no_face and
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


class Daemon:
    def __init__(self, workdir: Path, video: Path, models_dir: Path, mqtt_port: int):
        self.data = workdir / "data"
        self.config = workdir / "proctord.toml"
        self._settings = (workdir, models_dir, video, mqtt_port)
        self.log = workdir / "daemon.log"
        self.process: subprocess.Popen | None = None

    def start(self, auto_start: bool = True) -> Daemon:
        """Run on the video in real time; `auto_start`: a session starts with it."""
        workdir, models_dir, video, mqtt_port = self._settings
        self.config.write_text(daemon_config(
            workdir, models_dir, video, camera={"realtime": True}, kiosk={"site": SITE, "name": KIOSK},
            session={"auto_start": auto_start, "candidate_id": "c-7"},
            mqtt={"port": mqtt_port, "reconnect_max_s": 1},
        ))
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


def test_the_last_will_says_offline_when_the_daemon_dies(tmp_path, mosquitto, daemon):
    supervisor = Supervisor(mosquitto.port)
    try:
        kiosk = daemon(mosquitto.port).start()
        wait_until(lambda: (s := supervisor.payloads("status")) and s[-1]["state"] == "online", 60, "the online status")
        kiosk.kill()  # no goodbye: the broker publishes the last will
        offline = wait_until(lambda: (s := supervisor.payloads("status")[-1])["state"] == "offline" and s, 10,
                             "the last will")
        assert (offline["reason"], offline["at"], offline["kiosk"]) == ("connection lost", None, KIOSK)
    finally:
        supervisor.close()


def open_events(db: Path) -> list[str]:
    """Ids of the events committed and still open, read from the file as the kill will leave it."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute('SELECT id FROM events WHERE "end" IS NULL')]
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


KILL_CYCLES = 3  # bench/drill_faults.py runs 20 and more


def test_kill9_open_events_send_end_alerts(tmp_path, daemon):
    """Issue 13 item 1: kill -9 with events open, the broker down during the kills and back after. Every
    event's start and end reach the supervisor, once each; the ends the kills cut say "interrupted"."""
    broker = Mosquitto(tmp_path, settings=PERSISTENT.format(dir=tmp_path))  # nothing listens on its port yet
    kiosk = daemon(broker.port)
    db = kiosk.data / "proctord.db"
    cut: set[str] = set()
    for _ in range(KILL_CYCLES):
        kiosk.start()  # each start also closes what the previous kill left open
        cut |= wait_until(lambda cut=cut: set(open_events(db)) - cut, 60, "a new event open in the database")
        kiosk.kill()
    assert len(cut) >= KILL_CYCLES

    broker.start()
    supervisor = Supervisor(broker.port, persistent=True)
    try:
        kiosk.start(auto_start=False)  # closes what the last kill left open, then drains the backlog
        wait_until(lambda: not open_events(db) and not kiosk.outbox(), 60, "the backlog to drain")
        reader = StoreReader(db)
        events = [e for s in reader.sessions() for e in reader.events(s.id)]
        expected = [f"{e.id}:{kind}" for e in events for kind in ("start", "end")]
        received = [p["id"] for p in supervisor.payloads("alert")]
        missing = sorted(set(expected) - set(received))
        print(f"\n{KILL_CYCLES} kill -9 cycles: {len(expected)} alerts expected, {len(set(received))} received, "
              f"{len(missing)} missing, {len(received) - len(set(received))} duplicates")
        assert missing == [] and len(received) == len(set(received))
        ends = {p["event"]["id"]: p["reason"] for p in supervisor.payloads("alert") if p["kind"] == "end"}
        assert {ends[event_id] for event_id in cut} == {"interrupted"}
        stops = [p for p in supervisor.payloads("session") if p["kind"] == "stop"]
        assert len(stops) == KILL_CYCLES and {p["session"]["state"] for p in stops} == {"interrupted"}
        assert kiosk.terminate() == 0
    finally:
        supervisor.close()
        broker.stop()
