"""The SQLite store: sessions, events and the MQTT outbox.

WAL mode, so the web UI reads while the pipeline writes. synchronous=FULL: event and session writes
are rare (a few per minute), and FULL makes each commit survive a power cut, which is what lets us
say "committed before published". One Store object is the one writer, reached only through
`StoreWriter.submit` (daemon/store/writer.py); readers use `StoreReader`, one read-only connection per thread.

A file that is not a usable SQLite database (zeroed header, truncated, random bytes, garbage pages)
raises `DatabaseUnusable`, whose message names the file and what to do about it.
"""

from __future__ import annotations

import errno
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import sqlite_utils

from daemon.errors import UserError
from daemon.events.model import Event, EventChange, SessionMetrics
from daemon.review import ReviewState, SessionReview
from daemon.store import command_ids, evidence, records, reviews
from daemon.store.command_ids import AnsweredRequest
from daemon.store.migrations import MIGRATIONS
from daemon.store.outbox import insert_outbox
from daemon.store.records import (
    CandidateInfo,
    MediaRecord,
    OutboxMessage,
    ReviewEntry,
    SessionRecord,
    StoredMedia,
    UserRecord,
)

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


# SQLite's primary result codes for a full disk, an I/O error, a file it cannot open and a lock (sqlite3
# names them, and gives an error its code, from Python 3.11 on), and the messages SQLite gives them, for
# Python 3.10, whose errors carry no code.
_SQLITE_STORAGE = {
    13: "database or disk is full", 10: "disk I/O error", 14: "unable to open database file", 5: "database is locked",
}
_OS_STORAGE = {errno.ENOSPC, errno.EDQUOT, errno.EIO}


def is_storage_failure(exc: BaseException) -> bool:
    """The disk is full or failing (or the file locked): the same write may succeed later."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is None:
            return any(message in str(exc) for message in _SQLITE_STORAGE.values())
        return code & 0xFF in _SQLITE_STORAGE
    return isinstance(exc, OSError) and exc.errno in _OS_STORAGE


class DatabaseUnusable(UserError):
    """The database file cannot be opened or read as SQLite: one line saying which file and what to do."""

    def __init__(self, path: Path, detail: str):
        backups = sorted(p.name for p in path.parent.glob(f"{path.name}*.bak"))
        restore = f"restore a backup ({', '.join(backups)}) over it" if backups else "restore it from a backup"
        super().__init__(
            f"{path}: not a usable database ({detail}); {restore}, or move it aside"
            f" (mv {path} {path}.corrupt) to start with an empty one"
        )
        self.path = path


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.DatabaseError as exc:
        conn.close()
        if is_storage_failure(exc):  # a full disk, not a bad file
            raise
        raise _unusable(path, exc) from exc
    return conn


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection; it never takes the write lock, so it never delays the pipeline."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """Raise DatabaseUnusable unless SQLite's quick_check passes (pages, records and indexes; not the
    slower cross-checks of integrity_check)."""
    refuse_empty(path)
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        if is_storage_failure(exc):
            raise
        raise _unusable(path, exc) from exc
    if problems != ["ok"]:
        raise DatabaseUnusable(path, "damaged pages: " + "; ".join(" ".join(p.split()) for p in problems))


def refuse_empty(path: Path) -> None:
    """An existing empty file is refused: SQLite would take it for a new database, but proctord never
    leaves one empty (its first commits may wait in the -wal, which is then not empty)."""
    wal = path.with_name(path.name + "-wal")
    if path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size):
        raise DatabaseUnusable(path, "the file is empty")


def _unusable(path: Path, exc: sqlite3.Error) -> DatabaseUnusable:
    if not path.exists():
        return DatabaseUnusable(path, f"cannot be opened: {exc}")
    if path.stat().st_size == 0:
        return DatabaseUnusable(path, "the file is empty")
    return DatabaseUnusable(path, str(exc))


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the schema up to date, backing the file up first when it holds data. Returns the version."""
    db = sqlite_utils.Database(conn)
    if not db["schema_version"].exists():
        db["schema_version"].create({"version": int, "applied_at": float}, pk="version")
    current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise RuntimeError(f"{path} has schema version {current}, newer than this proctord ({len(MIGRATIONS)})")
    if 0 < current < len(MIGRATIONS):
        backup = path.with_name(f"{path.name}.v{current}.bak")
        with sqlite3.connect(backup) as target:
            conn.backup(target)
        log.info("backed up %s to %s before migrating", path, backup)
    for version in range(current, len(MIGRATIONS)):
        with transaction(conn):
            MIGRATIONS[version](db)
            db["schema_version"].insert({"version": version + 1, "applied_at": time.time()})
        log.info("database schema now at version %d (%s)", version + 1, MIGRATIONS[version].__name__)
    return len(MIGRATIONS)


# Makes the outbox messages of a change, inside the change's own transaction (so both commit or neither).
Announce = Callable[["Store", SessionRecord], list[OutboxMessage]]
AnnounceEnd = Callable[[EventChange], list[OutboxMessage]]


class Store:
    """The one writer. Not thread-safe by design: only the store thread calls it (StoreWriter.submit).

    Every method commits on its own; called inside `atomic()` (as StoreWriter runs each write), the
    calls commit together."""

    def __init__(self, path: Path, kiosk: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.kiosk = kiosk
        new = not path.exists()
        if not new:
            refuse_empty(path)  # before connecting: setting WAL mode would write a header into it
        self._conn = connect(path)
        self._depth = 0  # atomic() nesting: only the outermost level begins and commits
        try:
            if not new:
                check_integrity(self._conn, path)
            migrate(self._conn, path)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if is_storage_failure(exc):  # a full disk, not a bad file
                raise
            raise _unusable(path, exc) from exc
        except BaseException:
            self._conn.close()
            raise
        self._db = sqlite_utils.Database(self._conn)
        # Reads that see this transaction's own writes (the report inside a session's stop).
        self.view = StoreReader(path, connection=lambda: self._conn)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def atomic(self):
        """One transaction around everything inside, however many Store calls it makes."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with transaction(self._conn):
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0

    def start_session(
        self, info: CandidateInfo, at: float, announce: Announce | None = None, min_analysed_share: float = 0.0,
        not_checked: tuple[str, ...] = (),
    ) -> SessionRecord:
        session = SessionRecord(
            id=time.strftime("%Y%m%dT%H%M%S", time.gmtime(at)) + "-" + uuid.uuid4().hex[:6],
            kiosk=self.kiosk, state="running", started_at=at, ended_at=None, last_seen_at=at, frames=0,
            min_analysed_share=min_analysed_share, not_checked=not_checked, **asdict(info),
        )
        with self.atomic():
            self._db["sessions"].insert(asdict(session) | {"not_checked": json.dumps(list(not_checked))})
            evidence.append_session_start(self._conn, asdict(session), time.time())
            if announce:
                self._insert_outbox(announce(self, session))
        return session

    def touch_session(self, session_id: str, at: float, frames: int, camera_offline_s: float = 0.0) -> None:
        """Record progress, so a crash leaves the last known time for the interrupted session."""
        with self.atomic():
            self._db["sessions"].update(
                session_id, {"last_seen_at": at, "frames": frames, "camera_offline_s": camera_offline_s}
            )

    def save_metrics(self, session_id: str, metrics: SessionMetrics) -> None:
        """Replace the session's focus tallies and calibration (committed with its progress)."""
        row = asdict(metrics.focus) | {
            "session_id": session_id,
            "neutral": None if metrics.neutral is None else json.dumps(asdict(metrics.neutral)),
        }
        with self.atomic():
            self._db["session_metrics"].upsert(row, pk="session_id")

    def finish_session(
        self, session_id: str, at: float, frames: int, state: str = "completed", announce: Announce | None = None,
        camera_offline_s: float = 0.0,
    ) -> SessionRecord:
        """End the session; `announce` makes its stop message, which commits with the stop."""
        with self.atomic():
            self._db["sessions"].update(session_id, {
                "state": state, "ended_at": at, "last_seen_at": at, "frames": frames,
                "camera_offline_s": camera_offline_s,
            })
            evidence.append_session_stop(self._conn, self._db["sessions"].get(session_id), time.time())
            finished = self.session(session_id)
            if announce:
                self._insert_outbox(announce(self, finished))
        return finished

    def close_interrupted(
        self, announce_end: AnnounceEnd | None = None, announce_stop: Announce | None = None
    ) -> list[SessionRecord]:
        """Sessions left running by a crash or power cut end as `interrupted` at their last known time,
        and so do their open events; each close commits with its message (reason "interrupted")."""
        running = self.running_sessions()
        finished = []
        with self.atomic():
            for session in running:
                for row in list(self._db["events"].rows_where('session_id = ? AND "end" IS NULL', [session.id])):
                    event = records.event_from_row(row)
                    closed = event.ended(session.last_seen_at, event.peak_confidence, event.evidence)
                    change = EventChange("end", closed, "interrupted")
                    self.record_event(change, announce_end(change) if announce_end else [])
                finished.append(self.finish_session(
                    session.id, session.last_seen_at, session.frames, "interrupted", announce_stop,
                    session.camera_offline_s,
                ))
        for session in running:
            log.warning("session %s was left open; closed as interrupted at its last known time", session.id)
        return finished

    def record_event(self, change: EventChange, messages: list[OutboxMessage]) -> None:
        """The event row and its outgoing alerts commit together: an alert is never lost nor sent for an
        event the database does not have."""
        row = asdict(change.event)
        row["evidence"] = json.dumps(row["evidence"], sort_keys=True)
        with self.atomic():
            self._db["events"].upsert(row, pk="id")
            evidence.append_event(self._conn, f"event_{change.kind}", row, time.time())
            self._insert_outbox(messages)

    def enqueue(self, messages: list[OutboxMessage]) -> None:
        with self.atomic():
            self._insert_outbox(messages)

    def ack(self, message_ids: list[str]) -> None:
        with self.atomic():
            self._conn.executemany("DELETE FROM outbox WHERE message_id = ?", [(mid,) for mid in message_ids])

    def remember_request(self, answered: AnsweredRequest, forget_before: float, keep_at_most: int) -> None:
        """A command's answer, so that its request id runs once (daemon/store/command_ids.py)."""
        with self.atomic():
            command_ids.remember(self._conn, answered, forget_before, keep_at_most)

    def session(self, session_id: str) -> SessionRecord:
        return records.session_from_row(self._db["sessions"].get(session_id))

    def running_sessions(self) -> list[SessionRecord]:
        return [records.session_from_row(row) for row in self._db["sessions"].rows_where("state = 'running'")]

    def add_media(self, media: MediaRecord, messages: list[OutboxMessage] = ()) -> None:
        """A finished recording file, with its sha256, joins the session's chain (and is queued for upload
        when its kind is one the uploader sends); `messages` (its snapshot on MQTT) commit with it."""
        with self.atomic():
            evidence.insert_media(self._conn, media, time.time())
            self._insert_outbox(list(messages))

    def chain_head(self, session_id: str) -> dict:
        """How long the session's tamper-evidence chain is and its last hash (README, "Tamper evidence")."""
        length, head = self._conn.execute(
            "SELECT chain_length, chain_head FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        return {"length": length, "head": head}

    def media_names(self, session_id: str) -> set[str]:
        return {row["name"] for row in self._db["media"].rows_where("session_id = ?", [session_id])}

    def record_deletion(self, name: str, reason: str) -> None:
        """Retention is about to delete this file: committed (and chained) before the file goes."""
        with self.atomic():
            evidence.record_deletion(self._conn, name, reason, time.time())

    def set_under_review(self, session_id: str, under_review: bool) -> None:
        """A session under review (an appeal) keeps all its files whatever retention says."""
        with self.atomic():
            self._require_session(session_id)
            self._db["sessions"].update(session_id, {"under_review": int(under_review)})

    def add_review(self, entry: ReviewEntry) -> ReviewEntry:
        """One review action, chained; raises ReviewRefused (nothing written) when it is not allowed."""
        with self.atomic():
            return reviews.add(self._conn, entry)

    def mark_synced(self, session_id: str) -> int:
        """The session's clips and snapshots are safe elsewhere, so retention may delete them here.
        Returns how many files were newly marked."""
        with self.atomic():
            self._require_session(session_id)
            marked = self._conn.execute(
                "UPDATE media SET synced_at = ? WHERE session_id = ? AND synced_at IS NULL", (time.time(), session_id)
            )
            return marked.rowcount

    def add_user(self, name: str, role: str, password_hash: str) -> bool:
        """False when the name is taken (nothing changes)."""
        now = time.time()
        with self.atomic():
            added = self._conn.execute(
                "INSERT OR IGNORE INTO users (name, role, password_hash, created_at, changed_at) VALUES (?, ?, ?, ?, ?)",
                (name, role, password_hash, now, now),
            )
            return added.rowcount == 1

    def set_password(self, name: str, password_hash: str) -> bool:
        """False when there is no such user."""
        with self.atomic():
            changed = self._conn.execute(
                "UPDATE users SET password_hash = ?, changed_at = ? WHERE name = ?", (password_hash, time.time(), name)
            )
            return changed.rowcount == 1

    def remove_user(self, name: str) -> bool:
        """False when there is no such user."""
        with self.atomic():
            return self._conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 1

    def _require_session(self, session_id: str) -> None:
        if not self._conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
            raise KeyError(f"no session {session_id!r}")

    def _insert_outbox(self, messages: list[OutboxMessage]) -> None:
        insert_outbox(self._conn, messages, time.time())

    def transact(self, write: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `write(connection, ...)` in the write's transaction: for a part that keeps its own tables (the uploader)."""
        with self.atomic():
            return write(self._conn, *args, **kwargs)


@contextmanager
def transaction(conn: sqlite3.Connection):
    """One write transaction: committed on success, rolled back on error (the connection otherwise
    runs in autocommit mode, so nothing is ever left half-written)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # SQLite rolls back by itself after some errors (a full disk, an I/O error): nothing left to undo.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class StoreReader:
    """Read access for the report, the publisher, retention and the web UI.

    Each thread keeps its own read-only connection (opened on its first read), so the web page and
    the publisher polling every 0.5 s do not reopen the file each time. `connection` instead reads
    through another connection: the store thread's own, to see the transaction it is in."""

    def __init__(self, path: Path, connection: Callable[[], sqlite3.Connection] | None = None):
        self.path = path
        self._connection = connection
        self._local = threading.local()

    def sessions(self, limit: int | None = 100) -> list[SessionRecord]:
        """The newest `limit` sessions (None: all), newest first."""
        rows = self._query("SELECT * FROM sessions ORDER BY started_at DESC LIMIT ?", (-1 if limit is None else limit,))
        return [records.session_from_row(row) for row in rows]

    def session(self, session_id: str) -> SessionRecord | None:
        rows = self._query("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return records.session_from_row(rows[0]) if rows else None

    def events(self, session_id: str) -> list[Event]:
        rows = self._query('SELECT * FROM events WHERE session_id = ? ORDER BY start, id', (session_id,))
        return [records.event_from_row(row) for row in rows]

    def metrics(self, session_id: str) -> SessionMetrics:
        """The session's last committed focus tallies and calibration (empty before the first commit)."""
        rows = self._query("SELECT * FROM session_metrics WHERE session_id = ?", (session_id,))
        return records.metrics_from_row(rows[0] if rows else None)

    def outbox(self, after_id: int = 0, limit: int = 100) -> list[OutboxMessage]:
        rows = self._query("SELECT * FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
        return [records.outbox_from_row(row) for row in rows]

    def outbox_backlog(self) -> int:
        return self._query("SELECT count(*) AS n FROM outbox")[0]["n"]

    def media(self, session_id: str) -> list[MediaRecord]:
        """The session's recording files, deleted ones included, in recording order."""
        rows = self._query("SELECT * FROM media WHERE session_id = ? ORDER BY start, name", (session_id,))
        return [records.media_from_row(row) for row in rows]

    def live_media(self) -> list[StoredMedia]:
        """Every file not yet deleted nor waiting for its upload, oldest first, with what retention decides on."""
        return [records.stored_media_from_row(row) for row in self._query(evidence.LIVE_MEDIA_SQL)]

    def deletions(self) -> list[dict]:
        return self._query("SELECT * FROM deletions ORDER BY id")

    def under_review(self, session_id: str) -> bool:
        rows = self._query("SELECT under_review FROM sessions WHERE id = ?", (session_id,))
        return bool(rows and rows[0]["under_review"])

    def review(self, session_id: str) -> SessionReview:
        """The session's review as it stands (daemon/review.py), with its history."""
        rows = self._query(reviews.SESSION_SQL, (session_id,)) if self._query(reviews.TABLE_SQL) else []
        return SessionReview.of([records.review_entry_from_row(row) for row in rows])

    def review_states(self) -> dict[str, ReviewState]:
        """The review state of every session anything was reviewed in (the others: not reviewed)."""
        rows = self._query(reviews.STATES_SQL) if self._query(reviews.TABLE_SQL) else []
        return {row["session_id"]: reviews.state_of(row) for row in rows}

    def all_events(self) -> dict[str, list[Event]]:
        """Every session's events, by session id (the sessions list scores each session)."""
        by_session: dict[str, list[Event]] = {}
        for row in self._query("SELECT * FROM events ORDER BY start, id"):
            by_session.setdefault(row["session_id"], []).append(records.event_from_row(row))
        return by_session

    def event_counts(self) -> dict[str, int]:
        """Events recorded so far, over all sessions, by type."""
        return {row["type"]: row["n"] for row in self._query("SELECT type, count(*) AS n FROM events GROUP BY type")}

    def users(self) -> list[UserRecord]:
        return [records.user_from_row(row) for row in self._query("SELECT * FROM users ORDER BY name")]

    def user(self, name: str) -> UserRecord | None:
        rows = self._query("SELECT * FROM users WHERE name = ?", (name,))
        return records.user_from_row(rows[0]) if rows else None

    def has_users(self) -> bool:
        return bool(self._query("SELECT EXISTS (SELECT 1 FROM users) AS any_user")[0]["any_user"])

    def answered_request(self, request_id: str, since: float) -> AnsweredRequest | None:
        """The answer a command with this request id got, if it came at `since` or later."""
        rows = self._query(command_ids.LOOKUP_SQL, (request_id, since))
        return AnsweredRequest(**rows[0]) if rows else None

    def read(self, read: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `read(connection, ...)` on this thread's read-only connection (or the one given at init): for a
        part that keeps its own tables (the uploader, identity checks)."""
        conn = self._connection() if self._connection is not None else getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect_reader(self.path)
        try:
            return read(conn, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if type(exc) is sqlite3.DatabaseError:  # not a database, malformed: not an operational hiccup
                raise _unusable(self.path, exc) from exc
            raise

    def _query(self, sql: str, params: tuple = ()) -> list[dict]:
        if self._connection is not None:
            cursor = self._connection().execute(sql, params)
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor]
        return self.read(lambda conn: [dict(row) for row in conn.execute(sql, params)])
