"""The evidence tables beside sessions and events: the tamper-evidence chain, the media files and the
deletions retention made; and what of each row the chain keeps. Called by Store inside its transactions."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, fields

from daemon.store import chain
from daemon.store.records import MediaRecord

# What the chain keeps of a session: who and when at its start, how it ended at its stop. Progress
# (last_seen_at, frames while running) changes every few seconds and is not evidence.
SESSION_START_FIELDS = ("id", "kiosk", "candidate_name", "candidate_id", "exam_id", "notes", "started_at")
SESSION_STOP_FIELDS = ("state", "ended_at", "frames")
MEDIA_FIELDS = tuple(field.name for field in fields(MediaRecord))


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


# Every media file not yet deleted nor waiting for its upload (sync/upload_queue.py), with its session's
# state and review flag, oldest first.
LIVE_MEDIA_SQL = (
    "SELECT media.*, sessions.state, sessions.under_review FROM media JOIN sessions ON sessions.id = media.session_id"
    " WHERE media.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM uploads WHERE uploads.origin = 'media'"
    " AND uploads.name = media.name AND uploads.state = 'queued' AND uploads.kind IN (SELECT kind FROM upload_kinds))"
    " ORDER BY media.created_at, media.name"
)
