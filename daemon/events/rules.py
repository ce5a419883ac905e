"""The rule engine: a pure function of the FrameAnalysis stream and its timestamps.

Each event type is one small state machine (ConditionTracker). A condition must hold for `onset_s`
before its event starts and be absent for `release_s` before it ends, so no event fires on a single
frame and none flickers. The event's start and end are backdated to when the condition really began
and stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from daemon.config import RulesConfig, RuleTiming
from daemon.events.model import Event, EventChange
from daemon.inference.analysis import FrameAnalysis


@dataclass(frozen=True, slots=True)
class Observation:
    """What one rule reads off one frame: whether its condition holds, how sure, and on what evidence."""

    active: bool
    confidence: float = 0.0
    evidence: dict | None = None


def _no_face(analysis: FrameAnalysis) -> Observation:
    if analysis.faces:
        return Observation(False)
    return Observation(True, 1.0, {"faces": 0, "threshold": "faces < 1"})


def _multiple_faces(analysis: FrameAnalysis) -> Observation:
    if len(analysis.faces) < 2:
        return Observation(False)
    # As sure as the second most confident face: that face is what makes it "several".
    second = sorted((face.score for face in analysis.faces), reverse=True)[1]
    return Observation(True, second, {"faces": len(analysis.faces), "threshold": "faces > 1"})


CONDITIONS: dict[str, Callable[[FrameAnalysis], Observation]] = {
    "no_face": _no_face,
    "multiple_faces": _multiple_faces,
}


@dataclass(frozen=True, slots=True)
class Instant:
    """A moment on both clocks: durations are measured on `mono` (a Pi without an RTC steps its wall
    clock when NTP syncs), events are stamped with `wall`."""

    mono: float
    wall: float


class _State(Enum):
    IDLE = "idle"
    PENDING = "pending"  # condition holds, onset not yet reached
    ACTIVE = "active"
    RELEASING = "releasing"  # event open, condition gone, release not yet reached


def _reached(elapsed: float, delay: float) -> bool:
    # Frame times are sums of float steps (2.3 - 0.3 < 2.0): a microsecond of slack keeps an event
    # from starting one frame late.
    return elapsed >= delay - 1e-6


class ConditionTracker:
    """The state machine of one event type."""

    def __init__(self, event_type: str, timing: RuleTiming, new_id: Callable[[], str], session_id: str):
        self.event_type = event_type
        self._timing = timing
        self._new_id = new_id
        self._session_id = session_id
        self._state = _State.IDLE
        self._since = Instant(0.0, 0.0)  # when the condition last turned on (PENDING) or off (RELEASING)
        self._peak = 0.0
        self._evidence: dict = {}
        self._event: Event | None = None

    @property
    def open_event(self) -> Event | None:
        return self._event

    def update(self, t: Instant, observation: Observation) -> EventChange | None:
        if observation.active:
            return self._on(t, observation)
        return self._off(t)

    def close(self, t: Instant) -> EventChange | None:
        """End an open event at `t` (the session stops), or at the time its condition went away."""
        if self._event is None:
            self._state = _State.IDLE
            return None
        end = self._since if self._state is _State.RELEASING else t
        return self._finish(end)

    def _on(self, t: Instant, observation: Observation) -> EventChange | None:
        if self._state is _State.IDLE:
            self._state, self._since = _State.PENDING, t
            self._peak, self._evidence = observation.confidence, observation.evidence or {}
        elif observation.confidence > self._peak:
            self._peak, self._evidence = observation.confidence, observation.evidence or {}
        if self._state is _State.RELEASING:
            self._state = _State.ACTIVE
        if self._state is _State.PENDING and _reached(t.mono - self._since.mono, self._timing.onset_s):
            self._state = _State.ACTIVE
            self._event = Event(
                id=self._new_id(),
                session_id=self._session_id,
                type=self.event_type,
                severity=self._timing.severity,
                start=self._since.wall,
                end=None,
                peak_confidence=self._peak,
                evidence=self._evidence,
            )
            return EventChange("start", self._event)
        return None

    def _off(self, t: Instant) -> EventChange | None:
        if self._state is _State.PENDING:
            self._state = _State.IDLE
        elif self._state is _State.ACTIVE:
            self._state, self._since = _State.RELEASING, t
        if self._state is _State.RELEASING and _reached(t.mono - self._since.mono, self._timing.release_s):
            return self._finish(self._since)
        return None

    def _finish(self, end: Instant) -> EventChange:
        assert self._event is not None
        change = EventChange("end", self._event.ended(end.wall, self._peak, self._evidence))
        self._state, self._event = _State.IDLE, None
        return change


class RuleEngine:
    """All rules of one session, fed one FrameAnalysis at a time, in order, plus the camera's
    online/offline state (frames stop arriving, so `camera_lost` cannot come from a FrameAnalysis)."""

    def __init__(self, rules: RulesConfig, session_id: str, new_id: Callable[[], str]):
        self._trackers = [
            (CONDITIONS[name], ConditionTracker(name, getattr(rules, name), new_id, session_id))
            for name in CONDITIONS
        ]
        self._camera_lost = ConditionTracker("camera_lost", rules.camera_lost, new_id, session_id)

    def update_camera(self, t: Instant, online: bool) -> list[EventChange]:
        """The capture layer says whether frames are arriving (it decides "lost" after its timeout)."""
        change = self._camera_lost.update(t, Observation(not online, 1.0, {"camera": "no frames"}))
        return [change] if change else []

    def update(self, analysis: FrameAnalysis) -> list[EventChange]:
        t = Instant(analysis.mono, analysis.wall)
        changes = (tracker.update(t, condition(analysis)) for condition, tracker in self._trackers)
        return [change for change in changes if change is not None]

    def close(self, t: Instant) -> list[EventChange]:
        changes = (tracker.close(t) for tracker in self._all_trackers())
        return [change for change in changes if change is not None]

    @property
    def open_events(self) -> list[Event]:
        return [tracker.open_event for tracker in self._all_trackers() if tracker.open_event is not None]

    def _all_trackers(self) -> list[ConditionTracker]:
        return [tracker for _, tracker in self._trackers] + [self._camera_lost]
