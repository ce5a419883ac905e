"""The tamper-evidence chain (daemon.store.chain, daemon.store.verify) on real SQLite files and real files:
every change is chained, and every kind of tampering is reported naming what it concerns."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
from pathlib import Path

import pytest
import sqlite_utils
from conftest import run_proctord

from daemon.events.model import Event, EventChange
from daemon.store import db as store_db
from daemon.store.db import Store
from daemon.store.records import CandidateInfo, MediaRecord
from daemon.store.verify import UnknownSession, verify

T0 = 1_700_000_000.0


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "proctord.db", tmp_path / "recordings"


def add_file(root: Path, session_id: str, name: str, content: bytes, kind: str = "clip", event_id="ev-1") -> MediaRecord:
    path = root / session_id / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    return MediaRecord(f"{session_id}/{name}", session_id, kind, event_id, digest, len(content), T0 + 1, T0 + 9, 90)


def recorded_session(paths) -> str:
    """A finished session with two events (one started, then ended), a segment, a clip and a deleted file."""
    db_path, root = paths
    store = Store(db_path, "kiosk-7")
    try:
        session = store.start_session(CandidateInfo("Ada", "c-1", "exam-9"), at=T0)
        first = Event("ev-1", session.id, "no_face", "high", T0 + 5, None, 1.0, {"faces": 0})
        store.record_event(EventChange("start", first), [])
        store.add_media(add_file(root, session.id, "segment-0001.mp4", b"segment one", "segment", None))
        store.add_media(add_file(root, session.id, "segment-0002.mp4", b"segment two", "segment", None))
        store.record_event(EventChange("end", first.ended(T0 + 9, 1.0, {"faces": 0})), [])
        second = Event("ev-2", session.id, "multiple_faces", "high", T0 + 12, T0 + 14, 0.8, {"faces": 2})
        store.record_event(EventChange("end", second), [])
        store.add_media(add_file(root, session.id, "clip-ev-1.mp4", b"clip of ev-1"))
        store.finish_session(session.id, at=T0 + 20, frames=300)
        store.record_deletion(f"{session.id}/segment-0001.mp4", "test: retention")
        (root / session.id / "segment-0001.mp4").unlink()
        return session.id
    finally:
        store.close()


def sql(db_path: Path, statement: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute(statement, params)
    finally:
        conn.close()


def problems(paths, session_id: str | None = None) -> list[str]:
    return [str(problem) for problem in verify(*paths, session_id).problems]


def test_every_change_is_chained_and_an_untouched_session_verifies(paths):
    session_id = recorded_session(paths)

    result = verify(*paths, session_id)

    assert result.ok, result.problems
    [summary] = result.sessions
    assert (summary.entries, summary.events, summary.files_checked) == (9, 2, 2)
    kinds = [row[0] for row in sqlite3.connect(paths[0]).execute("SELECT kind FROM chain ORDER BY seq")]
    assert kinds == [
        "session_start", "event_start", "media", "media", "event_end", "event_end", "media", "session_stop",
        "media_deleted",
    ]
    assert [row["reason"] for row in sqlite_utils.Database(paths[0])["deletions"].rows] == ["test: retention"]


@pytest.mark.parametrize(
    "tamper, expected",
    [
        ('UPDATE events SET peak_confidence = 0.2 WHERE id = "ev-1"',
         "event ev-1: differs from its chained record in peak_confidence"),
        ('UPDATE events SET "end" = start + 1 WHERE id = "ev-2"', "event ev-2: differs from its chained record in end"),
        ('DELETE FROM events WHERE id = "ev-2"', "event ev-2: in the chain but missing from the database"),
        ("INSERT INTO events (id, session_id, type, severity, start) SELECT 'ev-9', id, 'no_face', 'high', 0 FROM sessions",
         "event ev-9: not in the chain"),
        ("UPDATE sessions SET candidate_name = 'Bob'", "session: differs from its chained record in candidate_name"),
        ("UPDATE sessions SET state = 'completed', ended_at = ended_at + 60",
         "session: differs from its chained record in ended_at"),
        ("UPDATE chain SET body = replace(body, '0.8', '0.1') WHERE seq = 6",
         "chain entry 6 (event_end ev-2): altered: its hash does not match its content"),
        ("DELETE FROM chain WHERE seq = 3", "chain entry 4 (media"),
        ("DELETE FROM chain WHERE seq = 9", "chain: has 8 entries but the session records 9"),
        ("UPDATE media SET sha256 = 'ab' WHERE kind = 'clip'", "differs from its chained record in sha256"),
    ],
)
def test_each_kind_of_database_tampering_is_reported(paths, tamper, expected):
    session_id = recorded_session(paths)
    sql(paths[0], tamper)

    found = problems(paths, session_id)

    assert any(expected in problem for problem in found), found
    assert all(problem.startswith(f"session {session_id}: ") for problem in found)


def test_altered_missing_and_planted_files_are_reported(paths):
    session_id = recorded_session(paths)
    root = paths[1] / session_id
    (root / "clip-ev-1.mp4").write_bytes(b"another clip")
    (root / "segment-0002.mp4").unlink()
    (root / "clip-ev-7.mp4").write_bytes(b"planted")
    (root / "clip-ev-8.mp4.part").write_bytes(b"still being written: not evidence yet")

    assert sorted(problems(paths)) == [
        f"session {session_id}: file {session_id}/clip-ev-1.mp4: altered: its sha256 differs from the one recorded",
        f"session {session_id}: file {session_id}/clip-ev-7.mp4: not in the chain (added afterwards?)",
        f"session {session_id}: file {session_id}/segment-0002.mp4: missing (and no deletion was recorded)",
    ]


def test_a_deleted_session_is_reported_from_its_chain(paths):
    session_id = recorded_session(paths)
    for table in ("events", "media", "sessions"):
        sql(paths[0], f"DELETE FROM {table}")

    found = problems(paths)

    assert f"session {session_id}: session: in the chain but missing from the sessions table (deleted?)" in found


def test_sessions_closed_after_a_crash_are_chained_too(paths):
    db_path, _ = paths
    store = Store(db_path, "kiosk-7")
    session = store.start_session(CandidateInfo(), at=T0)
    store.touch_session(session.id, at=T0 + 40, frames=600)
    store.record_event(EventChange("start", Event("ev-open", session.id, "no_face", "high", T0 + 20, None, 1.0)), [])
    store.close_interrupted()
    store.close()

    assert problems(paths) == []
    ends = sqlite3.connect(db_path).execute("SELECT kind, ref FROM chain WHERE seq > 2 ORDER BY seq").fetchall()
    assert ends == [("event_end", "ev-open"), ("session_stop", session.id)]


def test_a_database_from_before_the_chain_is_migrated_with_a_backup_and_verifies(paths):
    db_path, _ = paths
    conn = sqlite3.connect(db_path, isolation_level=None)
    old = sqlite_utils.Database(conn)
    old["schema_version"].create({"version": int, "applied_at": float}, pk="version")
    for version, migration in enumerate(store_db.MIGRATIONS[:2], start=1):
        migration(old)
        old["schema_version"].insert({"version": version, "applied_at": T0})
    old["sessions"].insert({"id": "s-old", "kiosk": "k", "state": "completed", "started_at": T0, "ended_at": T0 + 9,
                            "last_seen_at": T0 + 9, "frames": 90, "candidate_name": "Ada"})
    old["events"].insert({"id": "e-old", "session_id": "s-old", "type": "no_face", "severity": "high",
                          "start": T0 + 1, "end": T0 + 4, "peak_confidence": 1.0, "evidence": "{}"})
    conn.close()

    Store(db_path, "k").close()

    assert db_path.with_name("proctord.db.v2.bak").is_file()
    result = verify(*paths)
    assert result.ok, result.problems
    assert [(s.session_id, s.entries, s.events) for s in result.sessions] == [("s-old", 3, 1)]


def test_unknown_session_is_an_error(paths):
    recorded_session(paths)
    with pytest.raises(UnknownSession, match="no-such"):
        verify(*paths, "no-such")


def test_verify_command_exit_codes(paths, tmp_path):
    session_id = recorded_session(paths)
    config = tmp_path / "proctord.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n')

    def run(*args) -> subprocess.CompletedProcess:
        return run_proctord(*args, "--config", str(config))

    clean = run("verify")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert f"session {session_id}: ok (9 chain entries, 2 events, 2 files checked" in clean.stdout

    sql(paths[0], 'UPDATE events SET "end" = "end" + 5 WHERE id = "ev-1"')
    broken = run("verify", session_id)
    assert broken.returncode == 1
    assert broken.stdout.splitlines()[0] == (
        f"session {session_id}: event ev-1: differs from its chained record in end (edited?)"
    )
    assert run("verify", "no-such-session").returncode == 2
