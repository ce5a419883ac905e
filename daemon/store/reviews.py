"""The reviews table: the exam board's review actions (daemon/review.py), appended and never changed, each
chained into its session's evidence chain in the same transaction. Called by Store (writes) and
StoreReader (reads)."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, replace

from daemon.review import ReviewKind, ReviewRefused, ReviewState, SessionReview, check_entry
from daemon.store import chain
from daemon.store.records import ReviewEntry, review_entry_from_row

# A database from before m006 (read by `verify` or `export` before the daemon migrated it) has no reviews.
TABLE_SQL = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reviews'"
SESSION_SQL = "SELECT * FROM reviews WHERE session_id = ? ORDER BY id"
# Each session's review state in one pass, for the sessions list: the latest state entry, else whether
# anything was recorded (daemon/review.py: SessionReview.of folds the same way).
STATES_SQL = (
    "SELECT session_id, (SELECT value FROM reviews AS latest WHERE latest.session_id = reviews.session_id"
    " AND kind = 'state' ORDER BY id DESC LIMIT 1) AS marked FROM reviews GROUP BY session_id"
)


def add(conn: sqlite3.Connection, entry: ReviewEntry) -> ReviewEntry:
    """Record one review action; raises ReviewRefused (nothing written) when the session or flag does not
    allow it. Returns the entry with its row id."""
    check_entry(entry)
    session = conn.execute("SELECT state FROM sessions WHERE id = ?", (entry.session_id,)).fetchone()
    if session is None:
        raise ReviewRefused(f"no session {entry.session_id!r}")
    if session[0] == "running":
        raise ReviewRefused("the session is still running: review it once it has ended")
    review = SessionReview.of(entries(conn, entry.session_id))
    if entry.kind == ReviewKind.VERDICT:
        known = conn.execute(
            "SELECT 1 FROM events WHERE id = ? AND session_id = ?", (entry.event_id, entry.session_id)
        ).fetchone()
        if not known:
            raise ReviewRefused(f"no flag {entry.event_id!r} in this session")
    elif entry.kind == ReviewKind.STATE:
        _check_state_change(conn, entry, review)
    row = asdict(entry)
    del row["id"]
    cursor = conn.execute(
        f"INSERT INTO reviews ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
    )
    stored = replace(entry, id=cursor.lastrowid)
    chain.append(conn, entry.session_id, "review", str(stored.id), asdict(stored), entry.at)
    return stored


def _check_state_change(conn: sqlite3.Connection, entry: ReviewEntry, review: SessionReview) -> None:
    if entry.value == ReviewState.REVIEWED:
        if review.state is ReviewState.REVIEWED:
            raise ReviewRefused("the session is already marked reviewed")
        judged = set(review.verdicts)
        flags = [row[0] for row in conn.execute("SELECT id FROM events WHERE session_id = ?", (entry.session_id,))]
        pending = sum(flag not in judged for flag in flags)
        if pending:
            raise ReviewRefused(
                f"{pending} of {len(flags)} flags have no verdict yet: confirm or dismiss each before marking"
                " the session reviewed"
            )
    elif review.state is not ReviewState.REVIEWED:
        raise ReviewRefused("the session is not marked reviewed, so there is nothing to reopen")


def entries(conn: sqlite3.Connection, session_id: str) -> list[ReviewEntry]:
    cursor = conn.execute(SESSION_SQL, (session_id,))
    names = [column[0] for column in cursor.description]
    return [review_entry_from_row(dict(zip(names, row, strict=True))) for row in cursor]


def state_of(row: dict) -> ReviewState:
    """A STATES_SQL row's review state (a session without any row there is not reviewed)."""
    return ReviewState(row["marked"]) if row["marked"] else ReviewState.IN_REVIEW
