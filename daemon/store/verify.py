"""`proctord verify`: check each session's chain, and the rows and files it vouches for.

A break is reported when a chain entry was altered, removed or inserted; when a session, event, media or
review row differs from what the chain recorded, or exists on one side only; when a recorded file is missing
(and retention did not record its deletion) or its sha256 differs; or when a finished session's folder
holds a file the chain does not know. All of it is read in one snapshot of the database, so a running
daemon does not disturb the check.

What it cannot see: someone able to rewrite the whole database can rebuild a consistent chain. The
session's stop message carries the chain head to the supervisors (README, "Tamper evidence"): compare it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from daemon.files import PARTIAL_SUFFIX, file_sha256
from daemon.store import chain, reviews
from daemon.store.db import DatabaseUnusable, check_integrity, connect_reader
from daemon.store.evidence import MEDIA_FIELDS, SESSION_START_FIELDS, SESSION_STOP_FIELDS
from daemon.store.identity import REFERENCE_FIELDS

# Which record a chain entry vouches for; the last entry of a family and ref holds its current content.
_FAMILY = {
    "session_start": "session_start", "session_stop": "session_stop",
    "event_start": "event", "event_end": "event", "media": "media", "review": "review",
    "identity_reference": "identity_reference",
}
# Entries that record a deletion: the record they are about stays, with its content gone.
_DELETIONS = {"media_deleted", "identity_deleted"}


@dataclass(frozen=True, slots=True)
class Problem:
    session_id: str
    subject: str  # "chain entry 4 (event_end 9f…)", "event 9f…", "file <name>", "session"
    message: str

    def __str__(self) -> str:
        return f"session {self.session_id}: {self.subject}: {self.message}"


@dataclass(frozen=True, slots=True)
class SessionSummary:
    session_id: str
    entries: int
    head: str | None
    events: int
    files_checked: int


@dataclass(frozen=True, slots=True)
class Verification:
    sessions: list[SessionSummary] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Worth a look but not a break: half-written files (.part) a crash or a full disk left in a finished
    # session's folder, which are not evidence.
    notes: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class UnknownSession(LookupError):
    pass


def verify(db_path: Path, media_root: Path, session_id: str | None = None) -> Verification:
    """Verify one session, or every session in the database. Raises DatabaseUnusable when the file is not
    a sound SQLite database (its message says what to do)."""
    try:
        return _verify(db_path, media_root, session_id)
    except sqlite3.DatabaseError as exc:
        raise DatabaseUnusable(db_path, str(exc)) from exc


def _verify(db_path: Path, media_root: Path, session_id: str | None) -> Verification:
    result = Verification()
    conn = connect_reader(db_path)
    try:
        conn.execute("BEGIN")  # one snapshot for the whole check
        check_integrity(conn, db_path)
        if session_id is None:
            ids = sorted(
                {row[0] for row in conn.execute("SELECT id FROM sessions")}
                | {row[0] for row in conn.execute("SELECT DISTINCT session_id FROM chain")}
            )
        else:
            known = conn.execute(
                "SELECT 1 FROM sessions WHERE id = ? UNION SELECT 1 FROM chain WHERE session_id = ?",
                (session_id, session_id),
            ).fetchone()
            if not known:
                raise UnknownSession(f"no session {session_id!r} in {db_path}")
            ids = [session_id]
        for sid in ids:
            _SessionCheck(conn, media_root, sid, result).run()
    finally:
        conn.close()
    return result


class _SessionCheck:
    def __init__(self, conn: sqlite3.Connection, media_root: Path, session_id: str, result: Verification):
        self._conn = conn
        self._root = media_root
        self._id = session_id
        self._result = result

    def _problem(self, subject: str, message: str) -> None:
        self._result.problems.append(Problem(self._id, subject, message))

    def run(self) -> None:
        entries = chain.entries(self._conn, self._id)
        head = self._check_links(entries)
        latest: dict[tuple[str, str], dict] = {}  # (kind family, ref) -> the last body chained for it
        deleted: set[str] = set()
        for entry in entries:
            if entry.kind in _DELETIONS:
                deleted.add(entry.ref)
            elif entry.kind in _FAMILY:
                latest[(_FAMILY[entry.kind], entry.ref)] = json.loads(entry.body)
            else:
                self._problem(f"chain entry {entry.seq}", f"unknown kind {entry.kind!r}")
        session = self._row("SELECT * FROM sessions WHERE id = ?")
        if session is None:
            self._problem("session", "in the chain but missing from the sessions table (deleted?)")
        else:
            self._check_session(session, entries, head, latest)
        events = self._rows("SELECT * FROM events WHERE session_id = ?")
        self._check_rows("event", events, "id", {ref: body for (fam, ref), body in latest.items() if fam == "event"})
        references = {ref: body for (fam, ref), body in latest.items() if fam == "identity_reference"}
        self._check_rows("identity reference", self._rows("SELECT * FROM identity_references WHERE session_id = ?"),
                         "session_id", references, REFERENCE_FIELDS)
        self._check_embedding(deleted)
        media = {ref: body for (fam, ref), body in latest.items() if fam == "media"}
        self._check_rows("media row", self._rows("SELECT * FROM media WHERE session_id = ?"), "name", media, MEDIA_FIELDS)
        chained = {ref: body | {"id": ref} for (fam, ref), body in latest.items() if fam == "review"}
        stored = self._conn.execute(reviews.TABLE_SQL).fetchone()
        rows = [row | {"id": str(row["id"])} for row in self._rows(reviews.SESSION_SQL)] if stored else []
        self._check_rows("review entry", rows, "id", chained)
        files = self._check_files(media, deleted, running=session is not None and session["state"] == "running")
        self._result.sessions.append(SessionSummary(self._id, len(entries), head, len(events), files))

    def _check_embedding(self, deleted: set[str]) -> None:
        row = self._row("SELECT embedding, embedding_sha256 FROM identity_references WHERE session_id = ?")
        if row is None:
            return
        if row["embedding"] is None:
            if self._id not in deleted:
                self._problem("identity reference", "its embedding is gone but no deletion was recorded")
        elif hashlib.sha256(row["embedding"]).hexdigest() != row["embedding_sha256"]:
            self._problem("identity reference", "altered: its embedding's sha256 differs from the one recorded")

    def _check_links(self, entries: list[chain.ChainEntry]) -> str | None:
        prev = chain.GENESIS
        for expected_seq, entry in enumerate(entries, start=1):
            subject = f"chain entry {entry.seq} ({entry.kind} {entry.ref})"
            if entry.seq != expected_seq:
                self._problem(subject, f"entry {expected_seq} is missing before it (removed?)")
            elif entry.prev_hash != prev:
                self._problem(subject, "does not follow the entry before it (an entry was removed or inserted)")
            if entry.computed_hash() != entry.hash:
                self._problem(subject, "altered: its hash does not match its content")
            prev = entry.hash
        return entries[-1].hash if entries else None

    def _check_session(self, session: dict, entries: list, head: str | None, latest: dict) -> None:
        if (session["chain_length"], session["chain_head"]) != (len(entries), head):
            self._problem(
                "chain",
                f"has {len(entries)} entries but the session records {session['chain_length']}"
                " (entries removed from its end, or the head was rewritten)",
            )
        start = latest.get(("session_start", self._id))
        if start is None:
            self._problem("session", "its start is not in the chain")
        else:
            self._compare("session", session, start, SESSION_START_FIELDS)
        stop = latest.get(("session_stop", self._id))
        if stop is not None:
            self._compare("session", session, stop, SESSION_STOP_FIELDS)
        elif session["state"] != "running":
            self._problem("session", f"is {session['state']} but its stop is not in the chain")

    def _check_rows(
        self, what: str, rows: list[dict], key: str, chained: dict[str, dict], names: tuple[str, ...] | None = None
    ) -> None:
        by_key = {row[key]: row for row in rows}
        for ref, row in by_key.items():
            body = chained.get(ref)
            if body is None:
                self._problem(f"{what} {ref}", "not in the chain (added afterwards?)")
            else:
                self._compare(f"{what} {ref}", row, body, names or tuple(body))
        for ref in chained.keys() - by_key.keys():
            self._problem(f"{what} {ref}", "in the chain but missing from the database (deleted?)")

    def _compare(self, subject: str, row: dict, body: dict, names: tuple[str, ...]) -> None:
        differing = [name for name in names if row.get(name) != body.get(name)]
        if differing:
            self._problem(subject, f"differs from its chained record in {', '.join(differing)} (edited?)")

    def _check_files(self, media: dict[str, dict], deleted: set[str], running: bool) -> int:
        checked = 0
        for name, body in sorted(media.items()):
            if name in deleted:
                continue
            path = self._root / name
            if not path.is_file():
                self._problem(f"file {name}", "missing (and no deletion was recorded)")
                continue
            checked += 1
            if file_sha256(path) != body["sha256"]:
                self._problem(f"file {name}", "altered: its sha256 differs from the one recorded")
        folder = self._root / self._id
        if not running and folder.is_dir():
            for path in sorted(folder.rglob("*")):
                name = path.relative_to(self._root).as_posix()
                if not path.is_file() or name in media:
                    continue
                if name.endswith(PARTIAL_SUFFIX):
                    self._result.notes.append(Problem(
                        self._id, f"file {name}",
                        "half-written (a crash or a full disk cut it) and not evidence: keep it aside or delete it",
                    ))
                else:
                    self._problem(f"file {name}", "not in the chain (added afterwards?)")
        return checked

    def _row(self, sql: str) -> dict | None:
        rows = self._rows(sql)
        return rows[0] if rows else None

    def _rows(self, sql: str) -> list[dict]:
        return [dict(row) for row in self._conn.execute(sql, (self._id,))]
