"""The sessions list for the exam board: each session's score, flag counts and review state, filtered and
sorted server-side (the web page's query string picks the filter and the order).

The default order is the review priority: sessions nobody has reviewed first, then those in review, then
the ones still running (not reviewable yet), the reviewed last; within each, the lowest integrity score
first, then the most high-severity flags, then the newest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

from daemon.config import RulesConfig
from daemon.report.score import integrity
from daemon.review import ReviewState
from daemon.store.db import StoreReader
from daemon.store.records import SessionRecord


@dataclass(frozen=True, slots=True)
class SessionOverview:
    session: SessionRecord
    score: float | None  # the automatic integrity score (so far, while running); None: not assessable
    events: int
    high: int  # high-severity flags
    review: ReviewState

    @property
    def day(self) -> date:
        """The session's start date, local time."""
        return datetime.fromtimestamp(self.session.started_at).date()


def overviews(reader: StoreReader, rules: RulesConfig) -> list[SessionOverview]:
    """Every stored session, newest first."""
    events = reader.all_events()
    states = reader.review_states()
    rows = []
    for session in reader.sessions(limit=None):
        flags = events.get(session.id, [])
        rows.append(SessionOverview(
            session, integrity(flags, rules, session.started_at, max(session.duration, 0.0),
                               scored=session.assessment.assessable)["score"], len(flags),
            sum(e.severity == "high" for e in flags), states.get(session.id, ReviewState.NOT_REVIEWED),
        ))
    return rows


_REVIEW_RANK = {ReviewState.NOT_REVIEWED: 0, ReviewState.IN_REVIEW: 1, ReviewState.REVIEWED: 3}


def priority(row: SessionOverview) -> tuple:
    rank = 2 if row.session.state == "running" else _REVIEW_RANK[row.review]
    return rank, _score_key(row), -row.high, -row.session.started_at


def _score_key(row: SessionOverview) -> float:
    """A session with no score (not assessable) sorts as the lowest: it needs a reviewer's eyes most."""
    return -1.0 if row.score is None else row.score


class Sort(NamedTuple):
    label: str
    key: Callable[[SessionOverview], object]  # ascending


# Each order the list offers; ties fall back to the newest first.
SORTS: dict[str, Sort] = {
    "priority": Sort("Review priority", priority),
    "date": Sort("Date", lambda r: r.session.started_at),
    "score": Sort("Score", _score_key),
    "high": Sort("High-severity flags", lambda r: r.high),
    "events": Sort("Flags", lambda r: r.events),
    "state": Sort("State", lambda r: r.session.state),
    "review": Sort("Review", lambda r: _REVIEW_RANK[r.review]),
    "candidate": Sort("Candidate", lambda r: (r.session.candidate_name.casefold(), r.session.candidate_id.casefold())),
    "exam": Sort("Exam", lambda r: r.session.exam_id.casefold()),
}


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """What the list shows: filters (None or "" = any) and the order."""

    sort: str = "priority"
    descending: bool = False
    state: str = ""
    review: str = ""
    candidate: str = ""  # part of the name or id, any case
    exam: str = ""  # part of the exam id, any case
    since: date | None = None  # started on or after this day (local time)
    until: date | None = None  # started on or before this day
    max_score: float | None = None
    min_high: int | None = None

    def matches(self, row: SessionOverview) -> bool:
        s = row.session
        candidate = self.candidate.casefold()
        return (
            (not self.state or s.state == self.state)
            and (not self.review or row.review == self.review)
            and (candidate in s.candidate_name.casefold() or candidate in s.candidate_id.casefold())
            and self.exam.casefold() in s.exam_id.casefold()
            and (self.since is None or row.day >= self.since)
            and (self.until is None or row.day <= self.until)
            and (self.max_score is None or (row.score is not None and row.score <= self.max_score))
            and (self.min_high is None or row.high >= self.min_high)
        )


def select(rows: list[SessionOverview], query: SessionQuery) -> list[SessionOverview]:
    """The rows the query matches, in its order."""
    chosen = sorted((row for row in rows if query.matches(row)), key=lambda r: -r.session.started_at)
    return sorted(chosen, key=SORTS[query.sort].key, reverse=query.descending)
