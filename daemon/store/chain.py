"""The tamper-evidence chain: an append-only log of every change to a session's evidence.

Each session has its own chain. Every committed change (session start and stop, event start and end, a
media file finished or deleted, a reviewer's verdict, note, remarks or review state) appends one entry holding the changed row as canonical JSON, in the same
transaction as the change itself. An entry's hash covers its content and the previous entry's hash, so
editing, removing or inserting an entry breaks every hash after it; the session row keeps the chain's
length and head, and the session's stop message carries the head off the kiosk (README, "Tamper
evidence"); a review after the stop extends the chain beyond that head. `daemon/store/verify.py` checks the chain against the rows and the files.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass

GENESIS = "0" * 64  # the "previous hash" of a session's first entry


@dataclass(frozen=True, slots=True)
class ChainEntry:
    session_id: str
    seq: int  # 1, 2, 3... within the session
    kind: str  # session_start | session_stop | event_start | event_end | media | media_deleted | review
    ref: str  # what it is about: the session id, an event id or a media name
    body: str  # the row as committed, canonical JSON
    prev_hash: str
    hash: str
    at: float  # wall-clock seconds of the commit (not hashed: informative only)

    def computed_hash(self) -> str:
        return entry_hash(self.prev_hash, self.session_id, self.seq, self.kind, self.ref, self.body)


def canonical(body: dict) -> str:
    """One spelling per content: sorted keys, no spaces, floats as Python's round-tripping repr."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, session_id: str, seq: int, kind: str, ref: str, body: str) -> str:
    material = "\n".join([prev_hash, session_id, str(seq), kind, ref, body])
    return hashlib.sha256(material.encode()).hexdigest()


def append(conn: sqlite3.Connection, session_id: str, kind: str, ref: str, body: dict, at: float) -> str:
    """Add one entry to the session's chain; call inside the transaction that makes the change.
    Returns the new head."""
    length, head = conn.execute(
        "SELECT chain_length, chain_head FROM sessions WHERE id = ?", (session_id,)
    ).fetchone()
    seq, prev = length + 1, head or GENESIS
    text = canonical(body)
    digest = entry_hash(prev, session_id, seq, kind, ref, text)
    conn.execute(
        "INSERT INTO chain (session_id, seq, kind, ref, body, prev_hash, hash, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (session_id, seq, kind, ref, text, prev, digest, at),
    )
    conn.execute("UPDATE sessions SET chain_length = ?, chain_head = ? WHERE id = ?", (seq, digest, session_id))
    return digest


def entries(conn: sqlite3.Connection, session_id: str) -> list[ChainEntry]:
    rows = conn.execute(
        "SELECT session_id, seq, kind, ref, body, prev_hash, hash, at FROM chain WHERE session_id = ? ORDER BY seq",
        (session_id,),
    )
    return [ChainEntry(*row) for row in rows]
