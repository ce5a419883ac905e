"""The exam board's review of a session: a verdict per flag, notes, final remarks and the review state.

Every review action is one `ReviewEntry`, appended and never changed (daemon/store/reviews.py chains each
one into the session's evidence chain). A verdict can be changed by a later entry: the latest one for an
event counts, and the earlier ones stay as its history. The same holds for the final remarks and the
review state; notes accumulate.

The review state of a session: "not_reviewed" until the first entry, then "in_review", "reviewed" once a
reviewer marks it so (which needs a verdict on every flag), back to "in_review" if reopened.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.compat import StrEnum
from daemon.events.model import Event
from daemon.store.records import ReviewEntry
from daemon.untrusted import UNSAFE_IN_LINE, UNSAFE_IN_TEXT

NOTE_MAX = 2000  # a verdict's note, a session note
REMARKS_MAX = 10_000  # the final remarks: a few paragraphs
REVIEWER_MAX = 120


class Verdict(StrEnum):
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


class ReviewState(StrEnum):
    NOT_REVIEWED = "not_reviewed"
    IN_REVIEW = "in_review"
    REVIEWED = "reviewed"


class ReviewKind(StrEnum):
    VERDICT = "verdict"  # value: a Verdict, event_id: the flag, text: an optional note
    NOTE = "note"  # text: the note
    REMARKS = "remarks"  # text: the final remarks (the latest replace the earlier)
    STATE = "state"  # value: in_review (reopened) or reviewed


_VALUES = {
    ReviewKind.VERDICT: {v.value for v in Verdict},
    ReviewKind.NOTE: {""},
    ReviewKind.REMARKS: {""},
    ReviewKind.STATE: {ReviewState.IN_REVIEW.value, ReviewState.REVIEWED.value},
}
_TEXT_MAX = {ReviewKind.VERDICT: NOTE_MAX, ReviewKind.NOTE: NOTE_MAX, ReviewKind.REMARKS: REMARKS_MAX,
             ReviewKind.STATE: 0}


class ReviewRefused(ValueError):
    """A review action that cannot be recorded; the message says why, fit to show the reviewer."""


def text_problem(text: str, limit: int) -> str | None:
    """Why a note or remarks text is refused, None when it fits: bounded, no control or direction characters
    (it ends up in the PDF, the logs and exam-board systems) besides line breaks and tabs."""
    if len(text) > limit:
        return f"at most {limit} characters ({len(text)} given)"
    if found := UNSAFE_IN_TEXT.search(text):
        return f"the character U+{ord(found.group()):04X} is not allowed (a control or direction character)"
    return None


def check_entry(entry: ReviewEntry) -> None:
    """Raise ReviewRefused unless the entry is well formed (whether its session and event allow it is the
    store's check, in the same transaction as the write)."""
    try:
        kind = ReviewKind(entry.kind)
    except ValueError:
        raise ReviewRefused(f"unknown review action {entry.kind!r}") from None
    if entry.value not in _VALUES[kind]:
        allowed = " or ".join(sorted(v for v in _VALUES[kind] if v)) or "none"
        raise ReviewRefused(f"{kind.value}: {entry.value!r} is not a choice (allowed: {allowed})")
    if (kind is ReviewKind.VERDICT) != bool(entry.event_id):
        raise ReviewRefused("a verdict names its flag, and only a verdict does")
    if kind in (ReviewKind.NOTE, ReviewKind.REMARKS) and not entry.text.strip():
        raise ReviewRefused(f"the {kind.value} are empty" if kind is ReviewKind.REMARKS else "the note is empty")
    if problem := text_problem(entry.text, _TEXT_MAX[kind]):
        raise ReviewRefused(f"{'note' if kind is ReviewKind.VERDICT else kind.value}: {problem}")
    reviewer = entry.reviewer.strip()
    if not reviewer or len(reviewer) > REVIEWER_MAX or UNSAFE_IN_LINE.search(reviewer):
        raise ReviewRefused(f"the reviewer's name must be 1 to {REVIEWER_MAX} plain characters")


@dataclass(frozen=True, slots=True)
class SessionReview:
    """A session's review as it stands: the latest of each verdict, remarks and state, with the history."""

    state: ReviewState
    verdicts: dict[str, ReviewEntry]  # the latest verdict per event id
    notes: tuple[ReviewEntry, ...]
    remarks: ReviewEntry | None
    marked: ReviewEntry | None  # the latest state entry (who marked it reviewed or reopened it)
    history: tuple[ReviewEntry, ...]  # every entry, oldest first

    @classmethod
    def of(cls, entries: list[ReviewEntry]) -> SessionReview:
        """Folded from the session's entries, oldest first."""
        verdicts: dict[str, ReviewEntry] = {}
        remarks = marked = None
        for entry in entries:
            if entry.kind == ReviewKind.VERDICT:
                verdicts[entry.event_id] = entry
            elif entry.kind == ReviewKind.REMARKS:
                remarks = entry
            elif entry.kind == ReviewKind.STATE:
                marked = entry
        if marked is not None:
            state = ReviewState(marked.value)
        else:
            state = ReviewState.IN_REVIEW if entries else ReviewState.NOT_REVIEWED
        notes = tuple(e for e in entries if e.kind == ReviewKind.NOTE)
        return cls(state, verdicts, notes, remarks, marked, tuple(entries))

    def verdict(self, event_id: str) -> Verdict | None:
        entry = self.verdicts.get(event_id)
        return None if entry is None else Verdict(entry.value)

    def confirmed(self, events: list[Event]) -> list[Event]:
        return [e for e in events if self.verdict(e.id) is Verdict.CONFIRMED]

    def pending(self, events: list[Event]) -> list[Event]:
        """The flags without a verdict yet."""
        return [e for e in events if e.id not in self.verdicts]

    def history_of(self, event_id: str) -> list[ReviewEntry]:
        return [e for e in self.history if e.kind == ReviewKind.VERDICT and e.event_id == event_id]
