"""Tests for the SQLite store (daemon.store.db, daemon.store.writer) on real database files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from daemon.events.model import Event, EventChange
from daemon.store.db import MIGRATIONS, Store, StoreReader, migrate, transaction
from daemon.store.records import CandidateInfo, OutboxMessage
from daemon.store.writer import StoreWriter

REPO = Path(__file__).resolve().parents[1]
KIOSK = "kiosk-7"
T0 = 1_700_000_000.0
CANDIDATE = CandidateInfo(candidate_name="Ada", candidate_id="c-1", exam_id="exam-9", notes="desk 4")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "proctord.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    store = Store(db_path, KIOSK)
    yield store
    store.close()


@pytest.fixture
def reader(store: Store) -> StoreReader:
    return StoreReader(store.path)


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, outside the code under test."""
    return sqlite3.connect(path, isolation_level=None)


def query(path: Path, sql: str) -> list[tuple]:
    conn = raw(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def event(session_id: str, event_id: str = "ev-1", start: float = T0 + 10, end: float | None = None) -> Event:
    return Event(event_id, session_id, "no_face", "high", start, end, 0.9, {"faces": 0})


def message(message_id: str, payload: str | None = "{}") -> OutboxMessage:
    return OutboxMessage(message_id, f"proctor/site/{KIOSK}/alert", payload)


# --- schema and migrations -------------------------------------------------------------------------


def test_new_file_gets_wal_mode_and_the_latest_schema_version(store: Store, db_path: Path):
    assert query(db_path, "PRAGMA journal_mode") == [("wal",)]
    versions = [row[0] for row in query(db_path, "SELECT version FROM schema_version")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    tables = {row[0] for row in query(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sessions", "events", "outbox", "schema_version"} <= tables


def test_reopening_does_not_migrate_again(db_path: Path):
    Store(db_path, KIOSK).close()
    first = query(db_path, "SELECT version, applied_at FROM schema_version")

    reopened = Store(db_path, KIOSK)
    reopened.close()

    assert query(db_path, "SELECT version, applied_at FROM schema_version") == first
    assert list(db_path.parent.glob("*.bak")) == []


def test_migrate_on_an_up_to_date_connection_returns_the_current_version(store: Store, db_path: Path):
    assert migrate(store._conn, db_path) == len(MIGRATIONS)


def test_schema_newer_than_the_code_is_refused(db_path: Path):
    Store(db_path, KIOSK).close()
    conn = raw(db_path)
    conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (len(MIGRATIONS) + 1, T0))
    conn.close()

    with pytest.raises(RuntimeError, match="newer than this proctord"):
        Store(db_path, KIOSK)


# --- sessions --------------------------------------------------------------------------------------


def test_session_round_trip_through_the_reader(store: Store, reader: StoreReader):
    session = store.start_session(CANDIDATE, at=T0)
    assert reader.session(session.id) == session
    assert (session.state, session.kiosk, session.frames, session.ended_at) == ("running", KIOSK, 0, None)
    assert (session.candidate_name, session.exam_id, session.notes) == ("Ada", "exam-9", "desk 4")

    store.touch_session(session.id, at=T0 + 30, frames=450)
    touched = reader.session(session.id)
    assert (touched.last_seen_at, touched.frames, touched.state) == (T0 + 30, 450, "running")

    finished = store.finish_session(session.id, at=T0 + 60, frames=900)
    assert reader.session(session.id) == finished
    assert (finished.state, finished.ended_at, finished.last_seen_at, finished.frames) == (
        "completed", T0 + 60, T0 + 60, 900,
    )
    assert finished.duration == 60


def test_reader_lists_sessions_newest_first_and_misses_unknown_ids(store: Store, reader: StoreReader):
    older = store.start_session(CANDIDATE, at=T0)
    newer = store.start_session(CANDIDATE, at=T0 + 100)

    assert [s.id for s in reader.sessions()] == [newer.id, older.id]
    assert [s.id for s in reader.sessions(limit=1)] == [newer.id]
    assert reader.session("no-such-session") is None


def test_close_interrupted_ends_running_sessions_and_their_open_events(store: Store, reader: StoreReader):
    running = store.start_session(CANDIDATE, at=T0)
    store.touch_session(running.id, at=T0 + 40, frames=600)
    store.record_event(EventChange("start", event(running.id, "open", start=T0 + 20)), [])
    store.record_event(EventChange("end", event(running.id, "done", start=T0 + 5, end=T0 + 8)), [])
    completed = store.start_session(CANDIDATE, at=T0 - 500)
    store.record_event(EventChange("start", event(completed.id, "other", start=T0 - 450)), [])
    completed = store.finish_session(completed.id, at=T0 - 400, frames=100)

    closed = store.close_interrupted()

    assert [(s.id, s.state, s.ended_at) for s in closed] == [(running.id, "interrupted", T0 + 40)]
    assert reader.session(running.id) == closed[0]
    assert {e.id: e.end for e in reader.events(running.id)} == {"done": T0 + 8, "open": T0 + 40}
    assert reader.session(completed.id) == completed
    assert [e.end for e in reader.events(completed.id)] == [None]


def test_close_interrupted_with_nothing_running_returns_nothing(store: Store):
    session = store.start_session(CANDIDATE, at=T0)
    store.finish_session(session.id, at=T0 + 1, frames=1)
    assert store.close_interrupted() == []


# --- events and the outbox -------------------------------------------------------------------------


def test_record_event_upserts_start_then_end_with_its_messages(store: Store, reader: StoreReader):
    session = store.start_session(CANDIDATE, at=T0)
    started = event(session.id)
    store.record_event(EventChange("start", started), [message("ev-1:start")])
    assert reader.events(session.id) == [started]

    ended = started.ended(T0 + 25, 0.97, started.evidence)
    store.record_event(EventChange("end", ended), [message("ev-1:end")])

    assert reader.events(session.id) == [ended]
    assert [m.message_id for m in reader.outbox()] == ["ev-1:start", "ev-1:end"]


def test_record_event_rolls_back_the_event_when_its_message_cannot_be_stored(store: Store, reader: StoreReader):
    session = store.start_session(CANDIDATE, at=T0)
    unbindable = OutboxMessage("ev-1:start", "proctor/alert", object())  # type: ignore[arg-type]

    with pytest.raises(sqlite3.Error):
        store.record_event(EventChange("start", event(session.id)), [unbindable])

    assert reader.events(session.id) == []
    assert reader.outbox() == []
    store.record_event(EventChange("start", event(session.id)), [message("ev-1:start")])  # still usable
    assert len(reader.events(session.id)) == 1


def test_record_event_does_not_commit_an_event_whose_message_violates_not_null(
    store: Store, reader: StoreReader
):
    session = store.start_session(CANDIDATE, at=T0)

    with pytest.raises(sqlite3.IntegrityError):
        store.record_event(EventChange("start", event(session.id)), [message("ev-1:start", payload=None)])

    assert reader.events(session.id) == []


def test_duplicate_message_id_is_ignored(store: Store, reader: StoreReader):
    store.enqueue([message("m-1", payload='{"n": 1}')])
    store.enqueue([message("m-1", payload='{"n": 2}'), message("m-2")])

    assert [(m.message_id, m.payload) for m in reader.outbox()] == [("m-1", '{"n": 1}'), ("m-2", "{}")]
    assert reader.outbox_backlog() == 2


def test_ack_removes_only_the_named_messages(store: Store, reader: StoreReader):
    store.enqueue([message(f"m-{n}") for n in range(4)])

    store.ack(["m-1", "m-3", "never-sent"])

    assert [m.message_id for m in reader.outbox()] == ["m-0", "m-2"]


def test_outbox_pages_in_insertion_order(store: Store, reader: StoreReader):
    ids = ["z", "a", "m", "b", "y"]
    store.enqueue([message(mid) for mid in ids[:3]])
    store.enqueue([message(mid) for mid in ids[3:]])

    first = reader.outbox(limit=2)
    rest = reader.outbox(after_id=first[-1].id, limit=10)

    assert [m.message_id for m in first + rest] == ids
    assert [m.id for m in first + rest] == sorted(m.id for m in first + rest)


def test_outbox_keeps_topic_payload_and_retain(store: Store, reader: StoreReader):
    store.enqueue([OutboxMessage("s-1", "proctor/site/k/session", '{"kind": "start"}', retain=True)])
    [stored] = reader.outbox()
    assert (stored.message_id, stored.topic, stored.payload, stored.retain) == (
        "s-1", "proctor/site/k/session", '{"kind": "start"}', True,
    )


# --- crashes and concurrency -----------------------------------------------------------------------

CRASHING_WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from daemon.events.model import Event, EventChange
    from daemon.store.db import Store
    from daemon.store.records import CandidateInfo, OutboxMessage

    store = Store(Path(sys.argv[1]), "kiosk-7")
    session = store.start_session(CandidateInfo(candidate_name="Ada"), at=1000.0)
    store.touch_session(session.id, at=1042.0, frames=630)
    event = Event("ev-crash", session.id, "no_face", "high", 1010.0, None, 1.0, {"faces": 0})
    store.record_event(EventChange("start", event), [OutboxMessage("ev-crash:start", "t", "{}")])
    print(session.id, flush=True)
    os._exit(0)  # no close(), no checkpoint: as a power cut would leave it
    """
)


def test_store_reopens_after_a_writer_died_without_closing(db_path: Path):
    db_path.parent.mkdir(parents=True)
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(db_path)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )
    session_id = crashed.stdout.strip()
    assert db_path.with_name(db_path.name + "-wal").exists()  # the commits are still in the WAL

    store = Store(db_path, KIOSK)
    try:
        reader = StoreReader(db_path)
        assert reader.session(session_id).state == "running"
        assert [(e.id, e.end) for e in reader.events(session_id)] == [("ev-crash", None)]
        assert [m.message_id for m in reader.outbox()] == ["ev-crash:start"]

        [closed] = store.close_interrupted()
        assert (closed.id, closed.state, closed.ended_at) == (session_id, "interrupted", 1042.0)
        assert [e.end for e in reader.events(session_id)] == [1042.0]
    finally:
        store.close()


def test_store_reopens_after_an_abandoned_store_object(db_path: Path):
    abandoned = Store(db_path, KIOSK)
    session = abandoned.start_session(CANDIDATE, at=T0)
    del abandoned

    store = Store(db_path, KIOSK)
    try:
        assert StoreReader(db_path).session(session.id) == session
    finally:
        store.close()


def test_reader_is_not_blocked_by_an_open_write_transaction(store: Store, reader: StoreReader, db_path: Path):
    committed = store.start_session(CANDIDATE, at=T0)
    other_writer = raw(db_path)
    try:
        other_writer.execute("BEGIN IMMEDIATE")
        other_writer.execute(
            "INSERT INTO sessions (id, kiosk, state, started_at, last_seen_at, frames)"
            " VALUES ('uncommitted', 'k', 'running', 0, 0, 0)"
        )

        assert [s.id for s in reader.sessions()] == [committed.id]
        assert reader.session("uncommitted") is None
    finally:
        other_writer.execute("ROLLBACK")
        other_writer.close()


def test_transaction_rolls_back_on_error_and_commits_otherwise(store: Store, db_path: Path):
    insert = "INSERT INTO outbox (message_id, topic, payload, retain, created_at) VALUES (?, 't', '{}', 0, 0)"
    with pytest.raises(LookupError), transaction(store._conn) as conn:
        conn.execute(insert, ("rolled-back",))
        raise LookupError("a failure after the first write")
    with transaction(store._conn) as conn:
        conn.execute(insert, ("kept",))

    assert query(db_path, "SELECT message_id FROM outbox") == [("kept",)]
    assert not store._conn.in_transaction


# --- StoreWriter -----------------------------------------------------------------------------------


def test_writer_runs_writes_in_order_and_flushes_them_on_close(db_path: Path):
    writer = StoreWriter(Store(db_path, KIOSK))
    session = writer.submit(lambda store: store.start_session(CANDIDATE, T0)).result()
    for frames in range(1, 51):
        writer.submit(lambda store, frames=frames: store.touch_session(session.id, T0 + frames, frames))
    writer.submit(lambda store: store.finish_session(session.id, T0 + 60, 60))

    writer.close()

    finished = StoreReader(db_path).session(session.id)
    assert (finished.state, finished.frames, finished.ended_at) == ("completed", 60, T0 + 60)


def test_writer_hands_a_failed_write_back_through_its_future(db_path: Path):
    writer = StoreWriter(Store(db_path, KIOSK))
    try:
        failed = writer.submit(lambda store: store.enqueue([OutboxMessage("m", "t", object())]))  # type: ignore[arg-type]
        with pytest.raises(sqlite3.Error):
            failed.result()
        writer.submit(lambda store: store.enqueue([message("after")])).result()
    finally:
        writer.close()
    assert [m.message_id for m in StoreReader(db_path).outbox()] == ["after"]


def test_a_write_made_of_several_calls_commits_whole_or_not_at_all(db_path: Path):
    writer = StoreWriter(Store(db_path, KIOSK))
    try:
        session = writer.submit(lambda store: store.start_session(CANDIDATE, T0)).result()

        def start_then_fail(store: Store) -> None:
            store.record_event(EventChange("start", event(session.id)), [message("ev-1:start")])
            store.finish_session(session.id, T0 + 60, 60)
            raise LookupError("a failure after two committed-looking calls")

        with pytest.raises(LookupError):
            writer.submit(start_then_fail).result()
    finally:
        writer.close()
    reader = StoreReader(db_path)
    assert reader.events(session.id) == [] and reader.outbox() == []
    assert reader.session(session.id).state == "running"


def test_a_reader_keeps_its_connection_and_still_sees_every_new_commit_on_any_thread(store: Store, reader: StoreReader):
    seen = [len(reader.sessions())]
    for at in (T0, T0 + 1, T0 + 2):
        store.start_session(CANDIDATE, at)
        seen.append(len(reader.sessions()))
    from_other_thread = ThreadPoolExecutor(1).submit(lambda: len(reader.sessions())).result()
    assert seen == [0, 1, 2, 3] and from_other_thread == 3
