"""Proctoring events as the rules raise them and the store keeps them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal


@dataclass(frozen=True, slots=True)
class Instant:
    """A moment on both clocks: durations are measured on `mono` (a Pi without an RTC steps its wall
    clock when NTP syncs), events are stamped with `wall`."""

    mono: float
    wall: float


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    session_id: str
    type: str
    severity: str
    start: float  # wall-clock seconds: when the condition really began, not when it was confirmed
    end: float | None  # None while the event is open
    peak_confidence: float
    evidence: dict = field(default_factory=dict)

    def ended(self, end: float, peak_confidence: float, evidence: dict) -> Event:
        return replace(self, end=end, peak_confidence=peak_confidence, evidence=evidence)

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclass(frozen=True, slots=True)
class EventChange:
    """An event began (kind="start", end is None) or finished (kind="end").

    `reason` says why an event ended: "cleared" (its condition went away), "session_stopped" (the session
    was stopped with it open) or "interrupted" (the daemon shut down or crashed with it open; the close is
    made at shutdown or at the next start). None on a start."""

    kind: Literal["start", "end"]
    event: Event
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Neutral:
    """How this candidate sits at this kiosk: the median head pose and gaze over the calibration frames,
    in degrees (gaze None when the analyzer measured none). Looking away is measured from it."""

    head_yaw: float
    head_pitch: float
    gaze_yaw: float | None
    gaze_pitch: float | None
    samples: int  # frames the medians were taken over
    at: float  # wall-clock seconds: when calibration ended


@dataclass(frozen=True, slots=True)
class FocusCounts:
    """Per-frame tallies over a session's analysed frames, for the report's focus figures.

    `face_present`: at least one face. `pose_measured`: the candidate's face had a head pose.
    `looking_away`: that pose or gaze was beyond the looking_away limits from the neutral. `attentive`:
    measured and neither looking away nor eyes closed. `eyes_measured` / `eyes_closed`: the candidate's
    eye openness was known / below eyes_closed.max_openness. Instantaneous, without onset or release.

    Sound, per 32 ms window (AudioAnalysis): `sound_windows` heard, `speech_windows` inside speech, and
    `sound_power` their summed mean square (full scale = 1), for the mean level in dBFS."""

    frames: int = 0
    face_present: int = 0
    pose_measured: int = 0
    looking_away: int = 0
    attentive: int = 0
    eyes_measured: int = 0
    eyes_closed: int = 0
    sound_windows: int = 0
    speech_windows: int = 0
    sound_power: float = 0.0


@dataclass(frozen=True, slots=True)
class SessionMetrics:
    """What the rules measured over a session besides its events; committed with the session's progress."""

    focus: FocusCounts = FocusCounts()
    neutral: Neutral | None = None  # None until calibration ended
