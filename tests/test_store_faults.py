"""The store under faults (issue 13): a corrupt database file (item 6) and a full disk (item 2), with the
real `proctord` commands as processes, real SQLite files and, where the system lets us mount one, a real
size-limited tmpfs."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import daemon_config, kill_process, run_proctord, start_proctord, wait_until
from mqtt_helpers import Supervisor

from daemon.events.model import Event, EventChange
from daemon.store.db import DatabaseUnusable, Store, StoreReader
from daemon.store.records import CandidateInfo, OutboxMessage
from daemon.store.verify import verify
from daemon.store.writer import DiskReserve, StoreUnavailable, StoreWriter

T0 = 1_700_000_000.0
PAGE = 4096


def filled_database(path: Path, events: int = 200) -> str:
    """A database with a finished session holding `events` events (several pages per table)."""
    store = Store(path, "kiosk-1")
    try:
        session = store.start_session(CandidateInfo("Ada", "c-1"), T0)
        for i in range(events):
            event = Event(f"ev-{i:04d}", session.id, "no_face", "high", T0 + i, T0 + i + 0.5, 0.9, {"n": "x" * 40})
            store.record_event(EventChange("end", event), [OutboxMessage(f"ev-{i:04d}:end", "t", "{}")])
        store.finish_session(session.id, T0 + events, events)
    finally:
        store.close()
    return session.id


def zeroed_header(path: Path) -> None:
    with path.open("r+b") as file:
        file.write(b"\0" * 100)


def truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 3 + 17)


def random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def garbage_pages(path: Path) -> None:
    """Two pages in the middle overwritten: the header is fine, the file opens, reading hits the garbage."""
    with path.open("r+b") as file:
        file.seek(4 * PAGE)
        file.write(os.urandom(2 * PAGE))


CORRUPTIONS = [zeroed_header, truncated, random_bytes, empty, garbage_pages]


@pytest.fixture
def corrupt(tmp_path):
    """A config whose database has been damaged by `how` (checkpointed first: the damage is in the file)."""

    def make(how) -> tuple[Path, Path]:
        db = tmp_path / "data" / "proctord.db"
        db.parent.mkdir(parents=True)
        filled_database(db)
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        how(db)
        config = tmp_path / "proctord.toml"
        config.write_text(f'[paths]\ndata_dir = "{db.parent}"\n[mqtt]\nenabled = false\n[web]\nenabled = false\n')
        return config, db

    return make


def one_clear_line(done: subprocess.CompletedProcess, db: Path) -> str:
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    [line] = [line for line in done.stderr.splitlines() if str(db) in line]
    assert "move it aside" in line and "not a usable database" in line
    return line


@pytest.mark.parametrize("how", CORRUPTIONS, ids=lambda how: how.__name__)
def test_corrupt_database_verify_says_which_file_and_what_to_do(corrupt, how):
    config, db = corrupt(how)
    done = run_proctord("verify", "--config", str(config), timeout=60)
    one_clear_line(done, db)
    assert done.returncode == 1


@pytest.mark.parametrize("how", CORRUPTIONS, ids=lambda how: how.__name__)
def test_corrupt_database_run_refuses_with_one_line(corrupt, how, tmp_path, models_dir):
    config, db = corrupt(how)
    config.write_text(daemon_config(tmp_path, models_dir))
    done = run_proctord("run", "--config", str(config), timeout=60)
    one_clear_line(done, db)
    assert done.returncode == 2


def test_corrupt_database_names_its_backup(tmp_path):
    db = tmp_path / "proctord.db"
    filled_database(db)
    (tmp_path / "proctord.db.v2.bak").write_bytes(b"a backup")
    zeroed_header(db)
    with pytest.raises(DatabaseUnusable, match=r"restore a backup \(proctord\.db\.v2\.bak\) over it"):
        Store(db, "kiosk-1")


def test_corrupt_database_retention_failure_is_logged_once_and_shown(tmp_path, caplog):
    from daemon.config import Config
    from daemon.recording.service import RecordingService

    db = tmp_path / "data" / "proctord.db"
    db.parent.mkdir()
    filled_database(db)
    config = Config(paths={"data_dir": str(db.parent)}, retention={"min_free_mb": 0, "check_interval_s": 1})
    writer = StoreWriter(Store(db, "kiosk-1"))
    recording = RecordingService(config, writer, StoreReader(db))
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE media")  # a damaged schema: every retention check fails the same way
    try:
        with caplog.at_level(logging.ERROR, logger="daemon.recording.retention"):
            for _ in range(3):
                recording.retention.check()
        assert len([r for r in caplog.records if "retention failed" in r.message]) == 1
        status = recording.status()
        assert status.state == "degraded" and "retention: no such table: media" in status.reason
    finally:
        writer.close()


def test_corrupt_database_stray_part_file_is_reported_by_verify(tmp_path):
    db, root = tmp_path / "proctord.db", tmp_path / "recordings"
    session_id = filled_database(db, events=1)
    (root / session_id).mkdir(parents=True)
    (root / session_id / "segment-0003.mp4.part").write_bytes(b"half a fragment")
    result = verify(db, root)
    assert result.ok  # not a break of the chain
    [note] = result.notes
    assert str(note) == (f"session {session_id}: file {session_id}/segment-0003.mp4.part: half-written"
                         " (a crash or a full disk cut it) and not evidence: keep it aside or delete it")



# --- a full disk (issue 13 item 2) --------------------------------------------------------------------


def fill(directory: Path) -> Path:
    """Fill the file system with one file until it refuses more; returns the file (delete it to free)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for block in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


def changes(session_id: str, count: int, first: int = 0) -> list[EventChange]:
    return [
        EventChange("start", Event(f"ev-{i:04d}", session_id, "no_face", "high", T0 + i, None, 0.9, {"pad": "x" * 2000}))
        for i in range(first, first + count)
    ]


def record(writer: StoreWriter, change: EventChange):
    message = OutboxMessage(f"{change.event.id}:{change.kind}", "t", "{}")
    return writer.submit(lambda store: store.record_event(change, [message]))


def test_disk_full_a_refused_write_is_retried_from_memory_in_order_and_shown(tmpfs, caplog):
    data = tmpfs(16384)  # room for the 300 changes (about 4 MB with the WAL) once the filler goes
    db = data / "proctord.db"
    writer = StoreWriter(Store(db, "kiosk-1"), retry_s=0.05)
    try:
        session = writer.submit(lambda store: store.start_session(CandidateInfo("Ada"), T0)).result()
        filler = fill(data)
        with caplog.at_level(logging.ERROR, logger="daemon.store.writer"):
            futures = [record(writer, change) for change in changes(session.id, 300)]
            status = wait_until(lambda: (s := writer.status()).state == "degraded" and s, 30, "the writer degraded")
        assert status.figure("write_failures") >= 1 and status.figure("pending_writes") >= 1
        assert "disk is full" in status.reason or "full" in status.reason
        assert any(r.levelno == logging.ERROR and "kept in memory" in r.message for r in caplog.records)
        refused = writer.submit(lambda store: store.start_session(CandidateInfo("Bob"), T0), retry=False)
        with pytest.raises(StoreUnavailable):
            refused.result(10)  # a session start is answered at once, not left waiting for space

        filler.unlink()
        for future in futures:
            future.result(30)
        assert writer.status().state == "ok"
    finally:
        writer.close()
    reader = StoreReader(db)
    assert [e.id for e in reader.events(session.id)] == [f"ev-{i:04d}" for i in range(300)]
    assert [m.message_id for m in reader.outbox(limit=1000)] == [f"ev-{i:04d}:start" for i in range(300)]
    assert verify(db, data / "recordings").ok


def test_disk_full_the_database_reserve_is_given_up_first_then_made_again(tmpfs, caplog):
    data = tmpfs(16384)
    db = data / "proctord.db"
    # Each change's transaction adds about 30 KB of WAL pages: 2 MB is room for the 30 changes.
    reserve = DiskReserve(data / "proctord.db.reserve", 2_000_000)
    writer = StoreWriter(lambda: Store(db, "kiosk-1"), reserve, retry_s=0.05)
    try:
        assert reserve.held
        session = writer.submit(lambda store: store.start_session(CandidateInfo("Ada"), T0)).result()
        filler = fill(data)
        with caplog.at_level(logging.ERROR, logger="daemon.store.writer"):
            for future in [record(writer, change) for change in changes(session.id, 30)]:
                future.result(30)  # committed: the reserve made room
        assert not reserve.held and "released the 2 MB database reserve" in caplog.text
        assert "kept in memory" not in caplog.text  # the reserve was enough: no write had to wait
        status = writer.status()
        assert (status.state, status.figure("reserve_held")) == ("degraded", False)
        assert "no space is set aside for the database" in status.reason

        filler.unlink()
        record(writer, changes(session.id, 1, first=30)[0]).result(10)
        assert reserve.held and writer.status().state == "ok"
    finally:
        writer.close()
    assert len(StoreReader(db).events(session.id)) == 31


EVENT_LINE = re.compile(r"event (\w+) (start|end) \((\w+)\)")


def event_changes_logged(log: Path) -> set[str]:
    """`<event id>:<kind>` of every event change the daemon made, from its log."""
    return {f"{m[3]}:{m[2]}" for m in EVENT_LINE.finditer(log.read_text(errors="replace"))}


def db_rows(db: Path, sql: str) -> list[tuple]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:  # not there yet, or mid-write
        return []


def stored_changes(db: Path) -> set[str]:
    return {f"{i}:start" for (i,) in db_rows(db, "SELECT id FROM events")} | \
        {f"{i}:end" for (i,) in db_rows(db, 'SELECT id FROM events WHERE "end" IS NOT NULL')}


def full_disk_config(tmp_path: Path, data: Path, video: Path, models_dir: Path, port: int, reserve_mb: int = 0) -> Path:
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(
        tmp_path, models_dir, video, paths={"data_dir": data}, camera={"realtime": True},
        session={"auto_start": True, "candidate_id": "c-1"}, mqtt={"port": port, "reconnect_max_s": 1},
        recording={"segment_s": 2.0, "keyframe_interval_s": 0.5},
        # Without a reserve the database itself hits the full disk, and its writes wait in memory.
        retention={"min_free_mb": 8, "database_reserve_mb": reserve_mb},
    ))
    return config


# (database_reserve_mb, the log line that shows how the database got through)
WITHOUT_RESERVE = (0, "store: a write failed")  # writes wait in memory until the space returns
WITH_RESERVE = (4, "released the 4 MB database reserve")  # recordings stopped first; the reserve takes the rest


@pytest.mark.parametrize(("reserve_mb", "sign"), [WITHOUT_RESERVE, WITH_RESERVE], ids=["no_reserve", "reserve"])
def test_disk_full_during_a_session_loses_no_event_change_and_the_chain_verifies(
    tmp_path, tmpfs, mosquitto, scenario_video, models_dir, reserve_mb, sign
):
    """Issue 13 item 2: the data dir is a 40 MB tmpfs, filled while the session raises its events."""
    data = tmpfs(40 * 1024)
    db, log = data / "proctord.db", tmp_path / "daemon.log"
    supervisor = Supervisor(mosquitto.port)
    config = full_disk_config(tmp_path, data, scenario_video, models_dir, mosquitto.port, reserve_mb)
    daemon = start_proctord(config, log)
    try:
        wait_until(lambda: db_rows(db, "SELECT id FROM sessions"), 60, "the session to start")
        filler = fill(data)
        wait_until(lambda: sign in log.read_text(), 60, "the database meeting the full disk")
        wait_until(lambda: len(event_changes_logged(log)) >= 3, 60, "event changes made while the disk is full")
        waiting = len(event_changes_logged(log)) - len(stored_changes(db))
        filler.unlink()
        wait_until(lambda: db_rows(db, "SELECT state FROM sessions") == [("completed",)], 60, "the session's end")
        made, stored = event_changes_logged(log), stored_changes(db)
        wait_until(lambda: not db_rows(db, "SELECT 1 FROM outbox"), 30, "the outbox to drain")
        sent = {p["id"] for p in supervisor.payloads("alert")}
        print(f"\nfull disk: {len(made)} event changes made, {len(stored)} stored, {len(sent)} sent "
              f"({waiting} were waiting in memory when the space came back)")
        assert made == stored == sent
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0
    finally:
        kill_process(daemon)
        supervisor.close()
    output = log.read_text()
    assert "recording degraded" in output  # recordings stop first
    assert ("kept in memory" in output) == (reserve_mb == 0)
    verified = run_proctord("verify", "--config", str(config), timeout=60)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "not in the chain" not in verified.stdout


def test_disk_full_at_start_comes_up_degraded_not_aborted(tmp_path, tmpfs, mosquitto, scenario_video, models_dir):
    data = tmpfs(40 * 1024)
    filled_database(data / "proctord.db", events=3)  # yesterday's data
    log = tmp_path / "daemon.log"
    supervisor = Supervisor(mosquitto.port, topic="proctor/+/+/status")
    filler = fill(data)
    daemon = start_proctord(full_disk_config(tmp_path, data, scenario_video, models_dir, mosquitto.port), log)
    try:
        status = wait_until(lambda: (s := supervisor.payloads("status")) and s[-1]["state"] == "online" and s[-1],
                            60, "the kiosk online")
        wait_until(lambda: "running without a session" in log.read_text(), 30, "the refused auto start")
        status = wait_until(lambda: (s := supervisor.payloads("status")[-1])["store"]["state"] == "degraded" and s,
                            30, "the store degraded in the MQTT status")
        assert "database writes failing" in status["store"]["reason"]  # "disk I/O error": no room for the -shm
        assert daemon.poll() is None
        filler.unlink()
        daemon.terminate()
        assert daemon.wait(timeout=30) == 0
    finally:
        kill_process(daemon)
        supervisor.close()
    assert "Traceback" not in log.read_text()
