"""The command request ids this kiosk has answered, with their answers, kept for a time window: a
command re-sent within it (QoS 1 redelivery, an operator retrying, a restart between) gets its first
answer and does not run again. Called by Store (writes) and StoreReader (lookups)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AnsweredRequest:
    request_id: str
    digest: str  # of the request as validated, token left out: the same id with other content is refused
    answer: str  # the result payload as published
    answered_at: float


def remember(conn: sqlite3.Connection, answered: AnsweredRequest, forget_before: float, keep_at_most: int) -> None:
    """Record the answer, and forget the ids older than the window or beyond the newest `keep_at_most`."""
    conn.execute(
        "INSERT OR REPLACE INTO command_requests (request_id, digest, answer, answered_at) VALUES (?, ?, ?, ?)",
        (answered.request_id, answered.digest, answered.answer, answered.answered_at),
    )
    conn.execute("DELETE FROM command_requests WHERE answered_at < ?", (forget_before,))
    conn.execute(
        "DELETE FROM command_requests WHERE rowid NOT IN"
        " (SELECT rowid FROM command_requests ORDER BY answered_at DESC LIMIT ?)",
        (keep_at_most,),
    )


LOOKUP_SQL = "SELECT * FROM command_requests WHERE request_id = ? AND answered_at >= ?"
