"""The exam board's review as stored (daemon.review, daemon.store.reviews) on a real SQLite file: verdicts that
change with their history kept, notes, remarks and the review state, each chained and verified; refused
actions leave nothing behind and say why."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from daemon.config import RulesConfig
from daemon.events.model import Event, EventChange
from daemon.report import load_report
from daemon.review import NOTE_MAX, REMARKS_MAX, ReviewRefused, ReviewState, Verdict
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo, ReviewEntry
from daemon.store.verify import verify

T0 = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path / "proctord.db", "kiosk-3")
    yield store
    store.close()


def finished_session(store: Store, running: bool = False) -> str:
    session = store.start_session(CandidateInfo("Ada", "c-1", "exam-9"), at=T0)
    for event in (
        Event("ev-1", session.id, "no_face", "high", T0 + 5, T0 + 9, 1.0, {"threshold": "faces < 1", "faces": 0}),
        Event("ev-2", session.id, "looking_away", "medium", T0 + 12, T0 + 14, 0.8, {"threshold": "|head_yaw - neutral| > 10 deg", "yaw": 20}),
    ):
        store.record_event(EventChange("end", event), [])
    if not running:
        store.finish_session(session.id, at=T0 + 100, frames=1000)
    return session.id


def verdict(session_id: str, event_id: str, value: str, note: str = "", by: str = "board-1", at: float = T0 + 500):
    return ReviewEntry(session_id, "verdict", event_id, value, note, by, at)


def entry(session_id: str, kind: str, value: str = "", text: str = "", by: str = "board-1", at: float = T0 + 600):
    return ReviewEntry(session_id, kind, None, value, text, by, at)


def test_a_changed_verdict_keeps_its_history_and_the_latest_counts(store, tmp_path):
    sid = finished_session(store)
    reader = StoreReader(store.path)
    assert reader.review(sid).state is ReviewState.NOT_REVIEWED
    assert reader.review_states() == {}

    store.add_review(verdict(sid, "ev-1", "dismissed", "a shadow, not an absence", at=T0 + 500))
    store.add_review(verdict(sid, "ev-1", "confirmed", "empty chair on second look", by="board-2", at=T0 + 510))
    store.add_review(verdict(sid, "ev-2", "dismissed"))
    store.add_review(entry(sid, "note", text="Candidate wore a cap; pose less reliable."))

    review = reader.review(sid)
    assert review.state is ReviewState.IN_REVIEW
    assert review.verdict("ev-1") is Verdict.CONFIRMED and review.verdict("ev-2") is Verdict.DISMISSED
    latest = review.verdicts["ev-1"]
    assert (latest.reviewer, latest.at, latest.text) == ("board-2", T0 + 510, "empty chair on second look")
    assert [e.value for e in review.history_of("ev-1")] == ["dismissed", "confirmed"]
    assert [n.text for n in review.notes] == ["Candidate wore a cap; pose less reliable."]
    assert reader.review_states() == {sid: ReviewState.IN_REVIEW}

    store.add_review(entry(sid, "remarks", text="First draft."))
    store.add_review(entry(sid, "remarks", text="No misconduct beyond the one absence."))
    store.add_review(entry(sid, "state", "reviewed"))
    review = reader.review(sid)
    assert review.state is ReviewState.REVIEWED and review.marked.reviewer == "board-1"
    assert review.remarks.text == "No misconduct beyond the one absence."
    assert reader.review_states() == {sid: ReviewState.REVIEWED}

    store.add_review(entry(sid, "state", "in_review", by="board-2"))  # reopened
    assert reader.review(sid).state is ReviewState.IN_REVIEW

    result = verify(store.path, tmp_path / "recordings", sid)
    assert result.ok, result.problems
    kinds = [row[0] for row in sqlite3.connect(store.path).execute("SELECT kind FROM chain ORDER BY seq")]
    assert kinds.count("review") == 8


@pytest.mark.parametrize(("make", "reason"), [
    (lambda sid: verdict(sid, "ev-1", "maybe"), "'maybe' is not a choice (allowed: confirmed or dismissed)"),
    (lambda sid: verdict(sid, "ev-9", "confirmed"), "no flag 'ev-9' in this session"),
    (lambda sid: verdict(sid, "ev-1", "confirmed", "x" * (NOTE_MAX + 1)),
     f"note: at most {NOTE_MAX} characters ({NOTE_MAX + 1} given)"),
    (lambda sid: verdict(sid, "ev-1", "confirmed", "bad\x1b[2Jnote"), "U+001B is not allowed"),
    (lambda sid: verdict(sid, "ev-1", "confirmed", by=""), "the reviewer's name must be 1 to 120"),
    (lambda sid: entry(sid, "note", text="   "), "the note is empty"),
    (lambda sid: entry(sid, "remarks", text="y" * (REMARKS_MAX + 1)), f"at most {REMARKS_MAX} characters"),
    (lambda sid: entry(sid, "state", "reviewed"), "2 of 2 flags have no verdict yet"),
    (lambda sid: entry(sid, "state", "in_review"), "not marked reviewed, so there is nothing to reopen"),
    (lambda sid: entry(sid, "state", "done"), "'done' is not a choice (allowed: in_review or reviewed)"),
    (lambda sid: entry(sid, "grade", "A"), "unknown review action 'grade'"),
    (lambda sid: entry("no-such-session", "note", text="hello"), "no session 'no-such-session'"),
])
def test_bad_review_actions_are_refused_with_a_reason_and_write_nothing(store, tmp_path, make, reason):
    sid = finished_session(store)
    chain_before = store.chain_head(sid)

    with pytest.raises(ReviewRefused, match=re.escape(reason)):
        store.add_review(make(sid))

    assert StoreReader(store.path).review(sid).history == ()
    assert store.chain_head(sid) == chain_before


def test_a_running_session_cannot_be_reviewed_and_reviewed_needs_every_verdict(store):
    running = finished_session(store, running=True)
    with pytest.raises(ReviewRefused, match="still running"):
        store.add_review(verdict(running, "ev-1", "confirmed"))
    store.finish_session(running, at=T0 + 50, frames=500)

    store.add_review(verdict(running, "ev-1", "confirmed"))
    with pytest.raises(ReviewRefused, match="1 of 2 flags have no verdict yet"):
        store.add_review(entry(running, "state", "reviewed"))
    store.add_review(verdict(running, "ev-2", "confirmed"))
    store.add_review(entry(running, "state", "reviewed"))
    with pytest.raises(ReviewRefused, match="already marked reviewed"):
        store.add_review(entry(running, "state", "reviewed"))


def test_an_edited_or_deleted_review_breaks_verification(store, tmp_path):
    sid = finished_session(store)
    store.add_review(verdict(sid, "ev-1", "dismissed", "glare"))
    store.add_review(verdict(sid, "ev-2", "confirmed"))
    store.close()
    conn = sqlite3.connect(store.path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):  # a slip is stopped by the triggers
        conn.execute("UPDATE reviews SET value = 'confirmed' WHERE event_id = 'ev-1'")
    # A deliberate edit (triggers dropped) is caught by the chain.
    conn.execute("DROP TRIGGER reviews_append_only_update")
    conn.execute("DROP TRIGGER reviews_append_only_delete")
    conn.execute("UPDATE reviews SET value = 'confirmed', reviewer = 'someone' WHERE event_id = 'ev-1'")
    conn.execute("DELETE FROM reviews WHERE event_id = 'ev-2'")
    conn.close()

    problems = [str(p) for p in verify(store.path, tmp_path / "recordings", sid).problems]

    assert any("review entry 1" in p and "differs from its chained record in reviewer, value" in p for p in problems)
    assert any("review entry 2" in p and "missing from the database" in p for p in problems)


def test_a_database_from_before_reviews_still_verifies_and_reports(tmp_path):
    """`verify` and `export` may read a file the daemon has not migrated yet: no reviews, no error."""
    path = tmp_path / "proctord.db"
    store = Store(path, "kiosk-3")
    sid = finished_session(store)
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TABLE reviews")
    conn.execute("DELETE FROM schema_version WHERE version = 6")
    conn.close()

    assert verify(path, tmp_path / "recordings", sid).ok
    reader = StoreReader(path)
    assert reader.review(sid).state is ReviewState.NOT_REVIEWED and reader.review_states() == {}
    assert load_report(reader, sid, RulesConfig())["review"]["state"] == "not_reviewed"
