"""The store under faults (issue 13): a corrupt database file (item 6) and a full disk (item 2), with the
real `proctord` commands as processes, real SQLite files and, where the system lets us mount one, a real
size-limited tmpfs."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import daemon_config, run_proctord, wait_until

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
        assert writer.status().figure("reserve_held") is False

        filler.unlink()
        record(writer, changes(session.id, 1, first=30)[0]).result(10)
        assert reserve.held and writer.status().figure("reserve_held") is True
    finally:
        writer.close()
    assert len(StoreReader(db).events(session.id)) == 31
