"""The durable upload queue: which files go to the object store, how far each has got, and what is synced.

A media file is queued by a trigger in the transaction that records it (when its kind is one the
uploader sends, listed in `upload_kinds`), so no file can be recorded and then forgotten by a crash.
A multipart upload's id and each finished part are committed as they happen: after a kill -9 the
upload resumes at the first part the store has not confirmed. A file leaves the queue (state synced)
in the transaction that marks its media row synced, which releases it to retention, and that queues
its announcement on MQTT.

Write functions take the store's connection inside its transaction (Store.transact); read functions
take a read-only connection.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from daemon.store.outbox import insert_outbox
from daemon.store.records import OutboxMessage

# What may be queued: media kinds, and the session-end files.
MEDIA_KINDS = ("snapshot", "clip", "segment")
REPORT_KINDS = ("report", "manifest")
# Evidence first (a supervisor waits for it), then the session-end files, then plain recordings.
_PRIORITY = "CASE kind WHEN 'snapshot' THEN 0 WHEN 'clip' THEN 1 WHEN 'manifest' THEN 3 WHEN 'segment' THEN 4 ELSE 2 END"


@dataclass(frozen=True, slots=True)
class Upload:
    id: int
    origin: str
    name: str
    session_id: str
    kind: str
    event_id: str | None
    bytes: int
    sha256: str
    key: str | None
    attempts: int
    upload_id: str | None


@dataclass(frozen=True, slots=True)
class QueueFigures:
    backlog: int  # files waiting
    bytes_pending: int
    missing: int  # files that cannot be sent: gone or changed on the local disk
    last_upload_at: float | None


@dataclass(frozen=True, slots=True)
class ReportFile:
    name: str  # <session id>/<file>
    session_id: str
    kind: str  # report | manifest
    bytes: int
    sha256: str


# --- writes (store thread, inside Store.transact) --------------------------------------------------------

def configure(conn: sqlite3.Connection, media_kinds: tuple[str, ...], at: float) -> int:
    """Send these media kinds from now on, and queue the files of those kinds recorded before (while the
    uploader was off) that are neither synced nor deleted. Returns how many were queued that way."""
    conn.execute("DELETE FROM upload_kinds")
    conn.executemany("INSERT INTO upload_kinds (kind) VALUES (?)", [(kind,) for kind in media_kinds])
    queued = conn.execute(
        "INSERT OR IGNORE INTO uploads (origin, name, session_id, kind, event_id, bytes, sha256, created_at)"
        " SELECT 'media', name, session_id, kind, event_id, bytes, sha256, ? FROM media"
        " WHERE kind IN (SELECT kind FROM upload_kinds) AND synced_at IS NULL AND deleted_at IS NULL",
        (at,),
    )
    return queued.rowcount


def enqueue_reports(conn: sqlite3.Connection, files: list[ReportFile], at: float) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO uploads (origin, name, session_id, kind, bytes, sha256, created_at)"
        " VALUES ('report', ?, ?, ?, ?, ?, ?)",
        [(f.name, f.session_id, f.kind, f.bytes, f.sha256, at) for f in files],
    )


def set_key(conn: sqlite3.Connection, upload: int, key: str) -> None:
    conn.execute("UPDATE uploads SET key = ? WHERE id = ? AND key IS NULL", (key, upload))


def start_multipart(conn: sqlite3.Connection, upload: int, upload_id: str | None) -> None:
    """A new multipart upload (or None: start again), its parts none yet."""
    conn.execute("DELETE FROM upload_parts WHERE upload = ?", (upload,))
    conn.execute("UPDATE uploads SET upload_id = ? WHERE id = ?", (upload_id, upload))


def add_part(conn: sqlite3.Connection, upload: int, number: int, etag: str, size: int) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO upload_parts (upload, number, etag, bytes) VALUES (?, ?, ?, ?)",
        (upload, number, etag, size),
    )


def failed(conn: sqlite3.Connection, upload: int, error: str, retry_at: float, state: str = "queued") -> None:
    conn.execute(
        "UPDATE uploads SET attempts = attempts + 1, last_error = ?, next_try_at = ?, state = ? WHERE id = ?",
        (error, retry_at, state, upload),
    )


def synced(conn: sqlite3.Connection, upload: Upload, at: float, announcement: OutboxMessage) -> None:
    """The store holds the file with its sha256: out of the queue, released to retention, announced."""
    conn.execute("UPDATE uploads SET state = 'synced', synced_at = ?, upload_id = NULL, last_error = NULL"
                 " WHERE id = ?", (at, upload.id))
    conn.execute("DELETE FROM upload_parts WHERE upload = ?", (upload.id,))
    if upload.origin == "media":
        conn.execute("UPDATE media SET synced_at = ? WHERE name = ? AND synced_at IS NULL", (at, upload.name))
    insert_outbox(conn, [announcement], at)


# --- reads ------------------------------------------------------------------------------------------------

def due(conn: sqlite3.Connection, now: float, limit: int = 20) -> list[Upload]:
    rows = conn.execute(
        "SELECT id, origin, name, session_id, kind, event_id, bytes, sha256, key, attempts, upload_id FROM uploads"
        " WHERE state = 'queued' AND next_try_at <= ? AND (origin = 'report' OR kind IN (SELECT kind FROM upload_kinds))"
        f" ORDER BY {_PRIORITY}, id LIMIT ?",
        (now, limit),
    ).fetchall()
    return [Upload(*row) for row in rows]


def parts(conn: sqlite3.Connection, upload: int) -> dict[int, tuple[str, int]]:
    """The finished parts of the upload's multipart upload: number -> (etag, bytes)."""
    rows = conn.execute("SELECT number, etag, bytes FROM upload_parts WHERE upload = ?", (upload,))
    return {number: (etag, size) for number, etag, size in rows}


def figures(conn: sqlite3.Connection) -> QueueFigures:
    backlog, pending = conn.execute(
        "SELECT count(*), coalesce(sum(bytes), 0) FROM uploads WHERE state = 'queued'"
        " AND (origin = 'report' OR kind IN (SELECT kind FROM upload_kinds))"
    ).fetchone()
    missing = conn.execute("SELECT count(*) FROM uploads WHERE state = 'missing'").fetchone()[0]
    last = conn.execute("SELECT max(synced_at) FROM uploads").fetchone()[0]
    return QueueFigures(backlog, pending, missing, last)


def session_needing_reports(conn: sqlite3.Connection) -> str | None:
    """The oldest finished session whose reports and manifest are not queued yet."""
    row = conn.execute(
        "SELECT id FROM sessions WHERE state != 'running' AND id NOT IN"
        " (SELECT session_id FROM uploads WHERE kind = 'manifest') ORDER BY ended_at, id LIMIT 1"
    ).fetchone()
    return row[0] if row else None


def session_files(conn: sqlite3.Connection, session_id: str) -> list[dict]:
    """The session's recorded files, deleted ones included, for its manifest."""
    conn.row_factory = sqlite3.Row
    rows = conn.execute(
        "SELECT name, kind, event_id, sha256, bytes, deleted_at FROM media WHERE session_id = ? ORDER BY start, name",
        (session_id,),
    ).fetchall()
    return [dict(row) for row in rows]


def chain_head(conn: sqlite3.Connection, session_id: str) -> dict:
    length, head = conn.execute("SELECT chain_length, chain_head FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return {"length": length, "head": head}
