"""`proctord watch` as a real process against a real mosquitto, fed by a real kiosk publisher."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
from collections import deque

import pytest
from conftest import kill_process, wait_until
from mqtt_helpers import KIOSK, SITE, Kiosk, Supervisor

from daemon.sync.watch import Fleet, line_of, render


class Watch:
    """`proctord watch --json` with its output lines collected as they come."""

    def __init__(self, port: int):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "watch", "--broker", f"127.0.0.1:{port}", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.lines: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(json.loads(line))

    def of_type(self, kind: str) -> list[dict]:
        return [line for line in list(self.lines) if line["type"] == kind]

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=10)

    def kill(self) -> None:
        kill_process(self.process)


@pytest.fixture
def watch(mosquitto):
    started = Watch(mosquitto.port)
    yield started
    started.kill()


def test_watch_prints_a_json_line_per_alert_session_and_availability_change(tmp_path, mosquitto, watch):
    kiosk = Kiosk(tmp_path, mosquitto.port)
    try:
        online = wait_until(lambda: [s for s in watch.of_type("status") if s["state"] == "online"], 20,
                            "the kiosk online in the watch")[0]
        assert (online["site"], online["kiosk"], online["session_id"]) == (SITE, KIOSK, kiosk.session.id)

        ids = kiosk.raise_alerts(3)
        alerts = wait_until(lambda: len(a := watch.of_type("alert")) == 3 and a, 10, "three alert lines")
        assert [a["id"] for a in alerts] == ids
        assert all(a["site"] == SITE and a["kiosk"] == KIOSK and a["event"]["type"] == "no_face" for a in alerts)

        # A re-sent alert (same id, as after an outage) is not shown again.
        resend = Supervisor(mosquitto.port, client_id="resender")
        resend.publish(kiosk.topics.alert, json.dumps({k: v for k, v in alerts[0].items()
                                                       if k not in ("type", "received_at")}))
        resend.close()
        later = kiosk.raise_alerts(1)
        wait_until(lambda: len(watch.of_type("alert")) == 4, 10, "the next alert line")
        assert [a["id"] for a in watch.of_type("alert")] == ids + later
    finally:
        kiosk.close()
    offline = wait_until(lambda: [s for s in watch.of_type("status") if s["state"] == "offline"], 10,
                         "the kiosk offline in the watch")[0]
    assert offline["reason"] == "shutdown"
    assert watch.interrupt() == 0


def test_watch_draws_a_live_table_on_a_terminal(tmp_path, mosquitto):
    kiosk = Kiosk(tmp_path, mosquitto.port)
    kiosk.raise_alerts(1)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "watch", "--broker", f"127.0.0.1:{mosquitto.port}"],
        stdin=terminal, stdout=terminal, stderr=subprocess.DEVNULL, env=os.environ | {"COLUMNS": "160"},
    )
    os.close(terminal)
    screen = bytearray()

    def read_screen() -> None:
        try:
            while select.select([controller], [], [], 0.1)[0]:
                screen.extend(os.read(controller, 65536))
        except OSError:  # EIO: the watch has exited and the terminal is gone
            pass

    def shows_the_kiosk() -> bool:
        read_screen()
        last = screen.decode(errors="replace").rsplit("\x1b[2J", 1)[-1]
        return f"{SITE}/{KIOSK}" in last and "online" in last and "ok 15 fps" in last

    try:
        wait_until(shows_the_kiosk, 20, "the kiosk in the live table")
    finally:
        process.send_signal(signal.SIGINT)
        # A terminal is read until the end: a full one would hold the watch in its redraw.
        wait_until(lambda: read_screen() or process.poll() is not None, 10, "the watch to exit on Ctrl-C")
        assert process.returncode == 0
        os.close(controller)
        kiosk.close()


ALERT = {"v": 1, "id": "e1:start", "kind": "start", "site": "s", "kiosk": "k", "session_id": "s1",
         "event": {"id": "e1", "type": "no_face", "severity": "high", "start": 1.0, "end": None}}


def test_fleet_counts_duplicates_and_ignores_foreign_topics():
    fleet = Fleet("proctor")
    alert = json.dumps(ALERT).encode()
    assert len(fleet.receive("proctor/s/k/alert", alert, 1.0)) == 1
    assert fleet.receive("proctor/s/k/alert", alert, 2.0) == []
    assert fleet.receive("other/s/k/alert", alert, 3.0) == []
    [bad] = fleet.receive("proctor/s/k/alert", b"not json", 4.0)
    assert bad["type"] == "invalid" and "not JSON" in bad["reason"]
    heartbeat = json.dumps({"state": "online", "session_id": None}).encode()
    assert len(fleet.receive("proctor/s/k/status", heartbeat, 5.0)) == 1
    assert fleet.receive("proctor/s/k/status", heartbeat, 6.0) == []  # no change, no line
    assert fleet.duplicates == 1


ONLINE = {"state": "online", "at": 1.0, "session_id": None, "session": None, "camera_ok": True, "fps": 15.0,
          "outbox_backlog": 0}


@pytest.mark.parametrize(
    ("leaf", "payload", "reason"),
    [
        ("alert", json.dumps(ALERT | {"event": 5}), "event"),
        ("alert", json.dumps(ALERT | {"event": ALERT["event"] | {"type": ["x"]}}), "event.type"),
        ("alert", json.dumps(ALERT | {"received_at": "x"}), None),  # a field of the console's own: overridden
        ("alert", '{"id": "a", "x": ' + "[" * 3000 + "]" * 3000 + "}", "nested more than 16 deep"),
        ("alert", '{"id": ' + "7" * 5000 + "}", "a number of 5000 characters"),
        ("alert", '{"id": "\\ud800"}', "lone UTF-16 surrogate"),
        ("status", json.dumps(ONLINE | {"at": 1e300}), "at"),
        ("status", json.dumps(ONLINE | {"state": 5}), "state"),
        ("status", json.dumps(ONLINE | {"fps": "fast"}), "fps"),
        ("session", json.dumps({"id": "s:start", "kind": "start", "session": "x"}), "session"),
        ("status", "[]", "not a JSON object"),
    ],
)
def test_item4_watch_shows_a_bad_message_as_a_line_and_carries_on(leaf, payload, reason):
    fleet = Fleet("proctor")
    records = fleet.receive(f"proctor/s/k/{leaf}", payload.encode(), 100.0)
    lines = [line_of(record) for record in records]
    if reason is None:
        assert [r["received_at"] for r in records] == [100.0]
    else:
        assert [r["type"] for r in records] == ["invalid"] and reason in records[0]["reason"]
        assert "BAD MESSAGE on proctor/s/k/" in lines[0].text and "\n" not in lines[0].text
    render(fleet, deque(lines), "broker", True, 120, 40)  # the table draws too
    assert fleet.receive("proctor/s/k/status", json.dumps(ONLINE).encode(), 101.0)[0]["state"] == "online"


def test_item4_text_from_a_message_cannot_drive_the_terminal():
    fleet = Fleet("proctor")
    hostile = ALERT | {"event": ALERT["event"] | {"type": "no_face\x1b[2J\u202e"}}
    [record] = fleet.receive("proctor/s/k/alert", json.dumps(hostile).encode(), 1.0)
    line = line_of(record)
    assert "\x1b" not in line.text and "\u202e" not in line.text and "no_face\\x1b[2J\\u202e" in line.text
    screen = render(fleet, deque([line]), "broker", True, 200, 40)
    assert "\x1b" not in screen
    coloured = render(fleet, deque([line]), "broker", True, 200, 40, colour=True)
    assert "\x1b[2J" not in coloured and coloured.count("\x1b[") == 2  # only the emphasis, on and off


def test_item4_watch_process_survives_malformed_messages(tmp_path, mosquitto, watch):
    sender = Supervisor(mosquitto.port, topic="unrelated/topic", client_id="hostile")  # only publishes
    try:
        # Retained, so the watch gets it whenever it subscribes: its line says the watch is listening.
        sender.publish(f"proctor/{SITE}/{KIOSK}/status", json.dumps(ONLINE), retain=True)
        wait_until(lambda: watch.lines, 20, "the watch to listen")
        for payload in ('{"id": "a", "event": 5}', json.dumps(ALERT | {"received_at": "x"}),
                        "[" * 1100 + "]" * 1100, '{"id": ' + "9" * 5000 + "}"):
            sender.publish(f"proctor/{SITE}/{KIOSK}/alert", payload)
        wait_until(lambda: len(watch.lines) == 5, 20, "four more lines from the watch")
    finally:
        sender.close()
    assert [line["type"] for line in watch.lines] == ["status", "invalid", "alert", "invalid", "invalid"]
    assert watch.process.poll() is None


SESSION = {"id": "s1", "candidate_name": "Ada Lovelace", "candidate_id": "c-42", "exam_id": "math-101",
           "started_at": 1.0}


def test_watch_names_candidates_emphasises_high_severity_and_wraps_instead_of_cutting():
    fleet = Fleet("proctor")
    fleet.receive("proctor/s/k/status", json.dumps(ONLINE | {"session_id": "s1", "session": SESSION}).encode(), 1.0)
    [alert] = fleet.receive("proctor/s/k/alert", json.dumps(ALERT).encode(), 2.0)
    line = line_of(alert)
    assert "ALERT HIGH no_face start  Ada Lovelace (c-42)  session s1  event e1" in line.text and line.high
    medium = ALERT | {"id": "e2:start", "event": ALERT["event"] | {"id": "e2", "severity": "medium"}}
    assert not line_of(fleet.receive("proctor/s/k/alert", json.dumps(medium).encode(), 3.0)[0]).high

    narrow = render(fleet, deque([line]), "broker", True, 40, 40, colour=True)
    assert "Ada Lovelace (c-42) s1" in narrow.replace("\n    ", " ")  # the table's session cell, wrapped whole
    assert all(len(row) <= 40 for row in narrow.splitlines() if "\x1b" not in row)
    emphasised = [row for row in narrow.splitlines() if row.startswith("\x1b[1;31m")]
    assert "".join(emphasised).count("event e1") == 1  # every wrapped part of the line, nothing cut off


def test_watch_says_lost_without_a_frame_rate():
    fleet = Fleet("proctor")
    fleet.receive("proctor/s/k/status", json.dumps(ONLINE | {"camera_ok": False, "fps": 25.0}).encode(), 1.0)
    screen = render(fleet, deque(), "broker", True, 120, 40)
    assert "LOST" in screen and "LOST 25 fps" not in screen and "25 fps" not in screen
