"""Every schema migration of the store, in one place, named and applied in order (sqlite-utils style).

MIGRATIONS[n] brings the schema from version n to n + 1; `schema_version` records which ran and when.
Append a new function, never edit one that has shipped: a kiosk's database may be at any version.
"""

from __future__ import annotations

import time

import sqlite_utils

from daemon.store import evidence


def m001_sessions_events_outbox(db: sqlite_utils.Database) -> None:
    """Sessions, their events and the MQTT outbox."""
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


def m002_session_metrics(db: sqlite_utils.Database) -> None:
    """What the rules measured besides events: focus tallies and the calibrated neutral (report figures)."""
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


def m003_evidence_chain(db: sqlite_utils.Database) -> None:
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
        evidence.append_session_start(db.conn, session, now)
        for event in list(db.query("SELECT * FROM events WHERE session_id = ? ORDER BY start, id", [session["id"]])):
            evidence.append_event(db.conn, "event_end" if event["end"] is not None else "event_start", event, now)
        if session["state"] != "running":
            evidence.append_session_stop(db.conn, session, now)


def m004_command_requests(db: sqlite_utils.Database) -> None:
    """The MQTT command request ids answered, with their answers (daemon/store/command_ids.py)."""
    db.execute(
        "CREATE TABLE command_requests (request_id TEXT PRIMARY KEY, digest TEXT NOT NULL, answer TEXT NOT NULL,"
        " answered_at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX command_requests_answered_at ON command_requests (answered_at)")


def m005_upload_queue(db: sqlite_utils.Database) -> None:
    """The evidence upload queue (daemon/sync/upload_queue.py): its tables, and the trigger that queues a
    media file in the transaction that records it, when its kind is one the uploader sends."""
    db.execute("CREATE TABLE upload_kinds (kind TEXT PRIMARY KEY)")
    db.execute(
        "CREATE TABLE uploads (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " origin TEXT NOT NULL,"  # media: under the recordings directory; report: under the reports directory
        " name TEXT NOT NULL,"  # <session id>/<file>
        " session_id TEXT NOT NULL, kind TEXT NOT NULL, event_id TEXT,"
        " bytes INTEGER NOT NULL, sha256 TEXT NOT NULL,"
        " key TEXT,"  # the object key, fixed at the first attempt
        " state TEXT NOT NULL DEFAULT 'queued',"  # queued | synced | missing (the local file is gone or differs)
        " attempts INTEGER NOT NULL DEFAULT 0, next_try_at REAL NOT NULL DEFAULT 0, last_error TEXT,"
        " upload_id TEXT,"  # the multipart upload in progress
        " created_at REAL NOT NULL, synced_at REAL,"
        " UNIQUE (origin, name))"
    )
    db.execute("CREATE INDEX uploads_by_state ON uploads (state, next_try_at)")
    db.execute(
        "CREATE TABLE upload_parts (upload INTEGER NOT NULL REFERENCES uploads (id), number INTEGER NOT NULL,"
        " etag TEXT NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (upload, number))"
    )
    db.execute(
        "CREATE TRIGGER media_queued_for_upload AFTER INSERT ON media"
        " WHEN NEW.kind IN (SELECT kind FROM upload_kinds) BEGIN"
        " INSERT OR IGNORE INTO uploads (origin, name, session_id, kind, event_id, bytes, sha256, created_at)"
        " VALUES ('media', NEW.name, NEW.session_id, NEW.kind, NEW.event_id, NEW.bytes, NEW.sha256, NEW.created_at);"
        " END"
    )


def m006_users(db: sqlite_utils.Database) -> None:
    """The web page's named users (daemon/accounts.py): a role and a password hash each. `changed_at` moves
    with every new password, so the logins made before it end."""
    db.execute(
        "CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,"
        " created_at REAL NOT NULL, changed_at REAL NOT NULL)"
    )


def m007_reviews(db: sqlite_utils.Database) -> None:
    """The exam board's review actions (daemon/store/reviews.py): append-only, which the triggers enforce
    against a slip (a deliberate edit is what `proctord verify` catches, through the chain)."""
    db.execute(
        "CREATE TABLE reviews (id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " session_id TEXT NOT NULL REFERENCES sessions (id),"
        " kind TEXT NOT NULL,"  # verdict | note | remarks | state
        " event_id TEXT REFERENCES events (id),"  # a verdict's flag
        " value TEXT NOT NULL, text TEXT NOT NULL, reviewer TEXT NOT NULL, at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX reviews_by_session ON reviews (session_id, id)")
    for change in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER reviews_append_only_{change.lower()} BEFORE {change} ON reviews"
            " BEGIN SELECT RAISE(ABORT, 'reviews are append-only: record a new entry instead'); END"
        )


def m008_audio_focus(db: sqlite_utils.Database) -> None:
    """The sound tallies beside the frame tallies: windows heard, windows of speech, and their summed power
    (the report's speech share and mean sound level)."""
    for column, kind in (("sound_windows", "INTEGER"), ("speech_windows", "INTEGER"), ("sound_power", "REAL")):
        db.execute(f"ALTER TABLE session_metrics ADD COLUMN {column} {kind} NOT NULL DEFAULT 0")


def m009_honest_session_analysed_time(db: sqlite_utils.Database) -> None:
    """How long each session went without frames (measured on the clock, not from frames), the share of
    analysed time it needed to be scored ([session] min_analysed_share when it started; 0 before), and the
    rules it could not check (a JSON list of event types: the object rules on a face-only kiosk)."""
    db["sessions"].add_column("camera_offline_s", float, not_null_default=0.0)
    db["sessions"].add_column("min_analysed_share", float, not_null_default=0.0)
    db["sessions"].add_column("not_checked", str, not_null_default="[]")


def m010_identity_checks(db: sqlite_utils.Database) -> None:
    """Identity checks (daemon/store/identity.py): each session's reference embedding, and the similarity
    figures of the candidate to it over the session."""
    db.execute(
        "CREATE TABLE identity_references (session_id TEXT PRIMARY KEY REFERENCES sessions (id),"
        " source TEXT NOT NULL, model TEXT NOT NULL, dimensions INTEGER NOT NULL,"
        " embedding BLOB,"  # float32 little-endian; NULL once deleted (retention)
        " embedding_sha256 TEXT NOT NULL, threshold REAL NOT NULL, samples INTEGER NOT NULL, taken_at REAL NOT NULL,"
        " photo TEXT,"  # the reference photo's media name, when kept
        " deleted_at REAL)"
    )
    db.execute(
        "CREATE TABLE identity_checks (session_id TEXT NOT NULL REFERENCES sessions (id), at REAL NOT NULL,"
        " similarity REAL NOT NULL)"
    )
    db.execute("CREATE INDEX identity_checks_by_session ON identity_checks (session_id, at)")


MIGRATIONS = [
    m001_sessions_events_outbox, m002_session_metrics, m003_evidence_chain, m004_command_requests,
    m005_upload_queue, m006_users, m007_reviews, m008_audio_focus, m009_honest_session_analysed_time,
    m010_identity_checks,
]
