"""Rows of the store as typed records: what the store hands to the report, sync and web layers."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

from daemon.events.model import Event, FocusCounts, Neutral, SessionMetrics


@dataclass(frozen=True, slots=True)
class CandidateInfo:
    candidate_name: str = ""
    candidate_id: str = ""
    exam_id: str = ""
    notes: str = ""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    kiosk: str
    candidate_name: str
    candidate_id: str
    exam_id: str
    notes: str
    state: str  # running | completed | interrupted
    started_at: float
    ended_at: float | None
    last_seen_at: float  # the last time the daemon was known to be running this session (frames or not)
    frames: int
    camera_offline_s: float = 0.0  # of the session without frames, on the clock (the camera was lost)
    min_analysed_share: float = 0.0  # [session] min_analysed_share when it started: below it, no score
    not_checked: tuple[str, ...] = ()  # event types its kiosk could not check (no object model: phone, book…)

    @property
    def duration(self) -> float:
        return max((self.ended_at or self.last_seen_at) - self.started_at, 0.0)

    @property
    def assessment(self) -> Assessment:
        """Whether the session was analysed for long enough to be scored (the pages, reports and the MQTT
        stop summary all show this)."""
        duration = self.duration
        analysed = max(duration - self.camera_offline_s, 0.0) if self.frames else 0.0
        share = analysed / duration if duration > 0 else 0.0
        assessable = share >= self.min_analysed_share
        reason = None
        if not assessable:
            reason = (
                f"only {100 * share:.0f} % of the session ({analysed:.1f} s of {duration:.1f} s) was analysed"
                f"{f' (camera offline {self.camera_offline_s:.1f} s)' if self.camera_offline_s >= 0.05 else ''}"
                f"{'' if self.frames else ', no frame at all'}; at least "
                f"{100 * self.min_analysed_share:.0f} % is needed for a score"
            )
        return Assessment(assessable, round(analysed, 3), round(share, 4), round(self.camera_offline_s, 3),
                          self.min_analysed_share, reason)


@dataclass(frozen=True, slots=True)
class Assessment:
    """Whether a session can be scored: a session the camera missed for most of its time gets no score
    ("not assessable"), however few events it has."""

    assessable: bool
    analysed_seconds: float  # the duration less the time without frames (0 without any frame)
    analysed_share: float  # of the duration, 0..1 (0 for a session of no duration)
    camera_offline_seconds: float
    min_analysed_share: float  # needed for a score
    reason: str | None  # why it is not assessable, in plain words (None when it is)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message waiting for the broker's acknowledgement. `message_id` is stable across retries."""

    message_id: str
    topic: str
    payload: str
    retain: bool = False
    id: int | None = None  # the outbox row, which fixes the sending order

@dataclass(frozen=True, slots=True)
class MediaRecord:
    """A finished recording file: a plain segment of the session, or an event's clip or snapshot."""

    name: str  # path under the recordings directory: <session id>/<file>
    session_id: str
    kind: str  # segment | clip | snapshot
    event_id: str | None  # the event of a clip or snapshot
    sha256: str
    bytes: int
    start: float  # wall-clock seconds of the first frame
    end: float  # of the last frame (a snapshot: the same)
    frames: int

    @property
    def file_name(self) -> str:
        """The file's name within its session's folder."""
        return self.name.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A named user of the web page (daemon/accounts.py)."""

    name: str
    role: str  # a daemon.accounts.Role value
    password_hash: str
    created_at: float
    changed_at: float  # the last new password


@dataclass(frozen=True, slots=True)
class ReviewEntry:
    """One review action on a session, as recorded (append-only; daemon/review.py gives the kinds)."""

    session_id: str
    kind: str  # verdict | note | remarks | state
    event_id: str | None  # a verdict's flag
    value: str  # verdict: confirmed | dismissed; state: in_review | reviewed; otherwise ""
    text: str  # a verdict's note, a note, the remarks ("" for none)
    reviewer: str  # who did it (the web login's user name)
    at: float  # wall-clock seconds
    id: int | None = None  # the row, once stored: the order of the actions


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """A media row with what retention needs to know about it."""

    media: MediaRecord
    created_at: float
    synced_at: float | None  # when its evidence was marked synced (None: not yet)
    deleted_at: float | None
    session_state: str
    under_review: bool


# --- rows to records: the one place that knows how a table's row maps to its record ---------------


def session_from_row(row: dict) -> SessionRecord:
    return SessionRecord(**{f.name: row[f.name] for f in fields(SessionRecord)} | {
        "not_checked": tuple(json.loads(row["not_checked"])),
    })


def event_from_row(row: dict) -> Event:
    return Event(**{f.name: row[f.name] for f in fields(Event)} | {"evidence": json.loads(row["evidence"] or "{}")})


def metrics_from_row(row: dict | None) -> SessionMetrics:
    """A session_metrics row (None before its first commit: empty metrics)."""
    if row is None:
        return SessionMetrics()
    focus = FocusCounts(**{f.name: row[f.name] for f in fields(FocusCounts)})
    return SessionMetrics(focus, Neutral(**json.loads(row["neutral"])) if row["neutral"] else None)


def outbox_from_row(row: dict) -> OutboxMessage:
    return OutboxMessage(row["message_id"], row["topic"], row["payload"], bool(row["retain"]), row["id"])


def media_from_row(row: dict) -> MediaRecord:
    return MediaRecord(**{f.name: row[f.name] for f in fields(MediaRecord)})


def user_from_row(row: dict) -> UserRecord:
    return UserRecord(**{f.name: row[f.name] for f in fields(UserRecord)})


def review_entry_from_row(row: dict) -> ReviewEntry:
    return ReviewEntry(**{f.name: row[f.name] for f in fields(ReviewEntry)})


def stored_media_from_row(row: dict) -> StoredMedia:
    """A LIVE_MEDIA_SQL row: the media row with its session's state and review flag."""
    return StoredMedia(
        media_from_row(row), row["created_at"], row["synced_at"], row["deleted_at"], row["state"],
        bool(row["under_review"]),
    )


@dataclass(frozen=True, slots=True)
class StoreSummary:
    state: str  # ok | degraded (database writes failing: kept in memory and retried)
    reason: str | None
    pending_writes: int
    write_failures: int  # attempts the disk refused since the start


STORE_OK = StoreSummary("ok", None, 0, 0)
