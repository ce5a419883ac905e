"""The SQLite store: sessions, events and the MQTT outbox.

WAL mode, so the web UI reads while the pipeline writes. synchronous=FULL: event and session writes
are rare (a few per minute), and FULL makes each commit survive a power cut, which is what lets us
say "committed before published". One Store object is the one writer; readers open their own
connections with `connect_reader`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import sqlite_utils

from daemon.events.model import Event, EventChange, FocusCounts, Neutral, SessionMetrics
from daemon.store import evidence
from daemon.store.outbox import insert_outbox
from daemon.store.records import CandidateInfo, MediaRecord, OutboxMessage, SessionRecord, StoredMedia
from daemon.sync.upload_queue import migrate_upload_queue

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


def _v1(db: sqlite_utils.Database) -> None:
    db["sessions"].create(
        {
            "id": str, "kiosk": str, "candidate_name": str, "candidate_id": str, "exam_id": str,
            "notes": str, "state": str, "started_at": float, "ended_at": float,
            "last_seen_at": float, "frames": int,
        },
        pk="id",
        not_null={"kiosk", "state", "started_at", "last_seen_at", "frames"},
    )
    db["events"].create(
        {
            "id": str, "session_id": str, "type": str, "severity": str, "start": float,
            "end": float, "peak_confidence": float, "evidence": str,
        },
        pk="id",
        foreign_keys=[("session_id", "sessions", "id")],
        not_null={"session_id", "type", "severity", "start"},
    )
    db["events"].create_index(["session_id", "start"])
    db.execute(
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE,"
        " topic TEXT NOT NULL, payload TEXT NOT NULL, retain INTEGER NOT NULL, created_at REAL NOT NULL)"
    )


def _v2(db: sqlite_utils.Database) -> None:
    # What the rules measured besides events: focus tallies and the calibrated neutral (report figures).
    db["session_metrics"].create(
        {
            "session_id": str, "frames": int, "face_present": int, "pose_measured": int,
            "looking_away": int, "attentive": int, "eyes_measured": int, "eyes_closed": int,
            "neutral": str,
        },
        pk="session_id",
        foreign_keys=[("session_id", "sessions", "id")],
        not_null={"frames", "face_present", "pose_measured", "looking_away", "attentive", "eyes_measured",
                  "eyes_closed"},
    )


# Numbered migrations: MIGRATIONS[n] brings the schema from version n to n + 1. Append, never edit.
MIGRATIONS = [_v1, _v2, evidence.migrate_v3, migrate_upload_queue]


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection; it never takes the write lock, so it never delays the pipeline."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


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
        log.info("database schema now at version %d", version + 1)
    return len(MIGRATIONS)


class Store:
    """The one writer. Not thread-safe by design: the pipeline calls it from a single store thread."""

    def __init__(self, path: Path, kiosk: str):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.kiosk = kiosk
        self._conn = connect(path)
        try:
            migrate(self._conn, path)
        except BaseException:
            self._conn.close()
            raise
        self._db = sqlite_utils.Database(self._conn)

    def close(self) -> None:
        self._conn.close()

    def start_session(self, info: CandidateInfo, at: float) -> SessionRecord:
        session = SessionRecord(
            id=time.strftime("%Y%m%dT%H%M%S", time.gmtime(at)) + "-" + uuid.uuid4().hex[:6],
            kiosk=self.kiosk, state="running", started_at=at, ended_at=None, last_seen_at=at, frames=0,
            **asdict(info),
        )
        with transaction(self._conn):
            self._db["sessions"].insert(asdict(session))
            evidence.append_session_start(self._conn, asdict(session), time.time())
        return session

    def touch_session(self, session_id: str, at: float, frames: int) -> None:
        """Record progress, so a crash leaves the last known time for the interrupted session."""
        with transaction(self._conn):
            self._db["sessions"].update(session_id, {"last_seen_at": at, "frames": frames})

    def save_metrics(self, session_id: str, metrics: SessionMetrics) -> None:
        """Replace the session's focus tallies and calibration (committed with its progress)."""
        row = asdict(metrics.focus) | {
            "session_id": session_id,
            "neutral": None if metrics.neutral is None else json.dumps(asdict(metrics.neutral)),
        }
        with transaction(self._conn):
            self._db["session_metrics"].upsert(row, pk="session_id")

    def finish_session(self, session_id: str, at: float, frames: int, state: str = "completed") -> SessionRecord:
        with transaction(self._conn):
            self._db["sessions"].update(
                session_id, {"state": state, "ended_at": at, "last_seen_at": at, "frames": frames}
            )
            evidence.append_session_stop(self._conn, self._db["sessions"].get(session_id), time.time())
        return self.session(session_id)

    def close_interrupted(self) -> list[SessionRecord]:
        """Sessions left running by a crash or power cut end as `interrupted` at their last known time,
        and so do their open events."""
        running = [self._session_from_row(row) for row in self._db["sessions"].rows_where("state = 'running'")]
        with transaction(self._conn):
            for session in running:
                open_events = list(self._db["events"].rows_where('session_id = ? AND "end" IS NULL', [session.id]))
                self._conn.execute(
                    'UPDATE events SET "end" = ? WHERE session_id = ? AND "end" IS NULL',
                    (session.last_seen_at, session.id),
                )
                for row in open_events:
                    evidence.append_event(self._conn, "event_end", self._db["events"].get(row["id"]), time.time())
                self._db["sessions"].update(session.id, {"state": "interrupted", "ended_at": session.last_seen_at})
                evidence.append_session_stop(self._conn, self._db["sessions"].get(session.id), time.time())
        for session in running:
            log.warning("session %s was left open; closed as interrupted at its last known time", session.id)
        return [self.session(session.id) for session in running]

    def record_event(self, change: EventChange, messages: list[OutboxMessage]) -> None:
        """The event row and its outgoing alerts commit together: an alert is never lost nor sent for an
        event the database does not have."""
        row = asdict(change.event)
        row["evidence"] = json.dumps(row["evidence"], sort_keys=True)
        with transaction(self._conn):
            self._db["events"].upsert(row, pk="id")
            evidence.append_event(self._conn, f"event_{change.kind}", row, time.time())
            self._insert_outbox(messages)

    def enqueue(self, messages: list[OutboxMessage]) -> None:
        with transaction(self._conn):
            self._insert_outbox(messages)

    def ack(self, message_ids: list[str]) -> None:
        with transaction(self._conn):
            self._conn.executemany("DELETE FROM outbox WHERE message_id = ?", [(mid,) for mid in message_ids])

    def session(self, session_id: str) -> SessionRecord:
        return self._session_from_row(self._db["sessions"].get(session_id))

    def running_sessions(self) -> list[SessionRecord]:
        return [self._session_from_row(row) for row in self._db["sessions"].rows_where("state = 'running'")]

    def add_media(self, media: MediaRecord, messages: list[OutboxMessage] = ()) -> None:
        """A finished recording file, with its sha256, joins the session's chain (and is queued for upload
        when its kind is one the uploader sends); `messages` (its snapshot on MQTT) commit with it."""
        with transaction(self._conn):
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
        with transaction(self._conn):
            evidence.record_deletion(self._conn, name, reason, time.time())

    def set_under_review(self, session_id: str, under_review: bool) -> None:
        """A session under review (an appeal) keeps all its files whatever retention says."""
        with transaction(self._conn):
            self._require_session(session_id)
            self._db["sessions"].update(session_id, {"under_review": int(under_review)})

    def mark_synced(self, session_id: str) -> int:
        """The session's clips and snapshots are safe elsewhere, so retention may delete them here.
        Returns how many files were newly marked."""
        with transaction(self._conn):
            self._require_session(session_id)
            marked = self._conn.execute(
                "UPDATE media SET synced_at = ? WHERE session_id = ? AND synced_at IS NULL", (time.time(), session_id)
            )
            return marked.rowcount

    def _require_session(self, session_id: str) -> None:
        if not self._conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
            raise KeyError(f"no session {session_id!r}")

    def _insert_outbox(self, messages: list[OutboxMessage]) -> None:
        insert_outbox(self._conn, messages, time.time())

    def transact(self, write: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `write(connection, ...)` in one transaction: for a part that keeps its own tables (the uploader)."""
        with transaction(self._conn):
            return write(self._conn, *args, **kwargs)

    @staticmethod
    def _session_from_row(row: dict) -> SessionRecord:
        return SessionRecord(**{f.name: row[f.name] for f in fields(SessionRecord)})


@contextmanager
def transaction(conn: sqlite3.Connection):
    """One write transaction: committed on success, rolled back on error (the connection otherwise
    runs in autocommit mode, so nothing is ever left half-written)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class StoreReader:
    """Read access for the report, the publisher and the web UI, each call on its own connection."""

    def __init__(self, path: Path):
        self.path = path

    def sessions(self, limit: int = 100) -> list[SessionRecord]:
        rows = self._query("SELECT * FROM sessions ORDER BY started_at DESC LIMIT ?", (limit,))
        return [Store._session_from_row(row) for row in rows]

    def session(self, session_id: str) -> SessionRecord | None:
        rows = self._query("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return Store._session_from_row(rows[0]) if rows else None

    def events(self, session_id: str) -> list[Event]:
        rows = self._query('SELECT * FROM events WHERE session_id = ? ORDER BY start, id', (session_id,))
        return [Event(**{**row, "evidence": json.loads(row["evidence"] or "{}")}) for row in rows]

    def metrics(self, session_id: str) -> SessionMetrics:
        """The session's last committed focus tallies and calibration (empty before the first commit)."""
        rows = self._query("SELECT * FROM session_metrics WHERE session_id = ?", (session_id,))
        if not rows:
            return SessionMetrics()
        row = rows[0]
        neutral = row.pop("neutral")
        focus = FocusCounts(**{f.name: row[f.name] for f in fields(FocusCounts)})
        return SessionMetrics(focus, Neutral(**json.loads(neutral)) if neutral else None)

    def outbox(self, after_id: int = 0, limit: int = 100) -> list[OutboxMessage]:
        rows = self._query("SELECT * FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
        return [
            OutboxMessage(r["message_id"], r["topic"], r["payload"], bool(r["retain"]), r["id"]) for r in rows
        ]

    def outbox_backlog(self) -> int:
        return self._query("SELECT count(*) AS n FROM outbox")[0]["n"]

    def media(self, session_id: str) -> list[MediaRecord]:
        """The session's recording files, deleted ones included, in recording order."""
        rows = self._query("SELECT * FROM media WHERE session_id = ? ORDER BY start, name", (session_id,))
        return [evidence.media_from_row(row) for row in rows]

    def live_media(self) -> list[StoredMedia]:
        """Every file not yet deleted nor waiting for its upload, oldest first, with what retention decides on."""
        return [evidence.stored_media_from_row(row) for row in self._query(evidence.LIVE_MEDIA_SQL)]

    def deletions(self) -> list[dict]:
        return self._query("SELECT * FROM deletions ORDER BY id")

    def under_review(self, session_id: str) -> bool:
        rows = self._query("SELECT under_review FROM sessions WHERE id = ?", (session_id,))
        return bool(rows and rows[0]["under_review"])

    def event_counts(self) -> dict[str, int]:
        """Events recorded so far, over all sessions, by type."""
        return {row["type"]: row["n"] for row in self._query("SELECT type, count(*) AS n FROM events GROUP BY type")}

    def _query(self, sql: str, params: tuple = ()) -> list[dict]:
        conn = connect_reader(self.path)
        try:
            return [dict(row) for row in conn.execute(sql, params)]
        finally:
            conn.close()
