"""The evidence tables beside sessions and events: the tamper-evidence chain, the media files and the
deletions retention made; and what of each row the chain keeps. Called by Store inside its transactions."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, fields

import sqlite_utils

from daemon.store import chain
from daemon.store.records import MediaRecord, StoredMedia

# What the chain keeps of a session: who and when at its start, how it ended at its stop. Progress
# (last_seen_at, frames while running) changes every few seconds and is not evidence.
SESSION_START_FIELDS = ("id", "kiosk", "candidate_name", "candidate_id", "exam_id", "notes", "started_at")
SESSION_STOP_FIELDS = ("state", "ended_at", "frames")
MEDIA_FIELDS = tuple(field.name for field in fields(MediaRecord))


def migrate_v3(db: sqlite_utils.Database) -> None:
    """The chain, media and deletions tables; a chain for every session already in the file, so that
    data older than the chain verifies too (attested from the migration on)."""
    db.execute(
        "CREATE TABLE chain (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, seq INTEGER NOT NULL,"
        " kind TEXT NOT NULL, ref TEXT NOT NULL, body TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,"
        " at REAL NOT NULL, UNIQUE (session_id, seq))"
    )
    db["media"].create(
        {
            "name": str, "session_id": str, "kind": str, "event_id": str, "sha256": str, "bytes": int,
            "start": float, "end": float, "frames": int, "created_at": float, "synced_at": float,
            "deleted_at": float,
        },
        pk="name",
        foreign_keys=[("session_id", "sessions", "id")],
        not_null={"session_id", "kind", "sha256", "bytes", "start", "end", "frames", "created_at"},
    )
    db["media"].create_index(["session_id"])
    db["deletions"].create(
        {"id": int, "name": str, "session_id": str, "kind": str, "bytes": int, "reason": str, "deleted_at": float},
        pk="id",
        not_null={"name", "session_id", "kind", "bytes", "reason", "deleted_at"},
    )
    db["sessions"].add_column("under_review", int, not_null_default=0)
    db["sessions"].add_column("chain_length", int, not_null_default=0)
    db["sessions"].add_column("chain_head", str)
    now = time.time()
    for session in list(db.query("SELECT * FROM sessions ORDER BY started_at, id")):
        append_session_start(db.conn, session, now)
        for event in list(db.query("SELECT * FROM events WHERE session_id = ? ORDER BY start, id", [session["id"]])):
            append_event(db.conn, "event_end" if event["end"] is not None else "event_start", event, now)
        if session["state"] != "running":
            append_session_stop(db.conn, session, now)


def append_session_start(conn: sqlite3.Connection, session: dict, at: float) -> None:
    body = {name: session[name] for name in SESSION_START_FIELDS}
    chain.append(conn, session["id"], "session_start", session["id"], body, at)


def append_session_stop(conn: sqlite3.Connection, session: dict, at: float) -> None:
    body = {name: session[name] for name in SESSION_STOP_FIELDS}
    chain.append(conn, session["id"], "session_stop", session["id"], body, at)


def append_event(conn: sqlite3.Connection, kind: str, row: dict, at: float) -> None:
    """`row`: the events row exactly as committed (evidence as its JSON text)."""
    chain.append(conn, row["session_id"], kind, row["id"], dict(row), at)


def insert_media(conn: sqlite3.Connection, media: MediaRecord, at: float) -> None:
    row = asdict(media)
    conn.execute(
        f"INSERT INTO media ({', '.join(f'[{n}]' for n in row)}, created_at) VALUES ({', '.join('?' * len(row))}, ?)",
        (*row.values(), at),
    )
    chain.append(conn, media.session_id, "media", media.name, row, at)


def record_deletion(conn: sqlite3.Connection, name: str, reason: str, at: float) -> None:
    session_id, kind, size = conn.execute(
        "SELECT session_id, kind, bytes FROM media WHERE name = ?", (name,)
    ).fetchone()
    conn.execute("UPDATE media SET deleted_at = ? WHERE name = ?", (at, name))
    conn.execute(
        "INSERT INTO deletions (name, session_id, kind, bytes, reason, deleted_at) VALUES (?, ?, ?, ?, ?, ?)",
        (name, session_id, kind, size, reason, at),
    )
    chain.append(conn, session_id, "media_deleted", name, {"name": name, "reason": reason}, at)


def media_from_row(row: dict) -> MediaRecord:
    return MediaRecord(**{name: row[name] for name in MEDIA_FIELDS})


def stored_media_from_row(row: dict) -> StoredMedia:
    return StoredMedia(
        media_from_row(row), row["created_at"], row["synced_at"], row["deleted_at"], row["state"],
        bool(row["under_review"]),
    )


# Every media file not yet deleted nor waiting for its upload (sync/upload_queue.py), with its session's
# state and review flag, oldest first.
LIVE_MEDIA_SQL = (
    "SELECT media.*, sessions.state, sessions.under_review FROM media JOIN sessions ON sessions.id = media.session_id"
    " WHERE media.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM uploads WHERE uploads.origin = 'media'"
    " AND uploads.name = media.name AND uploads.state = 'queued' AND uploads.kind IN (SELECT kind FROM upload_kinds))"
    " ORDER BY media.created_at, media.name"
)
