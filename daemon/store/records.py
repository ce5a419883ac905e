"""Rows of the store as typed records: what the store hands to the report, sync and web layers."""

from __future__ import annotations

from dataclasses import dataclass


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
    last_seen_at: float  # the last time the pipeline was known to be analysing this session
    frames: int

    @property
    def duration(self) -> float:
        return (self.ended_at or self.last_seen_at) - self.started_at


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
class StoredMedia:
    """A media row with what retention needs to know about it."""

    media: MediaRecord
    created_at: float
    synced_at: float | None  # when its evidence was marked synced (None: not yet)
    deleted_at: float | None
    session_state: str
    under_review: bool
