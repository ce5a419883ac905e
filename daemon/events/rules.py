"""The rule engine: a pure function of the FrameAnalysis and AudioAnalysis streams and their timestamps.

Each event type is one small state machine (ConditionTracker) with three delays, measured on the
monotonic clock:

- onset_s: the condition must hold without a break for onset_s before an event can begin; a break
  during onset starts the count again, so a single frame or a flicker raises nothing.
- release_s: once begun, the event ends when the condition has been gone for release_s; a shorter gap
  is bridged (the event goes on), so nothing flickers.
- min_duration_s: the event is published (its "start" change) only once it has lasted min_duration_s,
  counted from its start and with its bridged gaps, at a frame where the condition holds. An event that
  ends sooner is dropped unpublished. With min_duration_s <= onset_s an event is published at onset.

Start and end are backdated to when the condition really began (the first frame of the onset) and
stopped (the first frame of the final gap). A published event always has an "end" change later, so
nothing published is ever retracted, and every published event lasts at least min_duration_s.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from daemon.config import IdentityConfig, RulesConfig, RuleTiming
from daemon.events.attention import Attention
from daemon.events.calibration import Calibrator
from daemon.events.conditions import Condition, Observation, Talking, build_conditions
from daemon.events.focus import FocusCounter
from daemon.events.identity import IdentityCheck, IdentityReference
from daemon.events.model import Event, EventChange, Instant, Neutral, SessionMetrics
from daemon.events.voice import VoiceFusion
from daemon.inference.analysis import AudioAnalysis, FrameAnalysis

__all__ = ["EVENT_TYPES", "ConditionTracker", "Instant", "Observation", "RuleEngine"]

# Sound counts as present (the voice rules judge talking, not the mouth alone) until this long after the
# last AudioAnalysis: the microphone delivers one every 32 ms; a lost one hands talking back to the mouth.
AUDIO_PRESENT_S = 1.0
# The rules that sound drives (the mouth rule's `talking` too, while sound is present).
VOICE_RULES = ("speech", "talking", "other_voice")

# Every event type, in the order of the config's [rules.*] tables: one per table holding a rule's timing.
EVENT_TYPES: tuple[str, ...] = tuple(
    name for name, field in RulesConfig.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, RuleTiming)
)


class _State(Enum):
    IDLE = "idle"
    PENDING = "pending"  # condition holds, onset not yet reached
    HELD = "held"  # onset reached, condition holds (published once min_duration_s is reached)
    RELEASING = "releasing"  # onset reached, condition gone, release not yet reached


def _reached(elapsed: float, delay: float) -> bool:
    # Frame times are sums of float steps (2.3 - 0.3 < 2.0): a microsecond of slack keeps an event
    # from starting one frame late.
    return elapsed >= delay - 1e-6


class ConditionTracker:
    """The state machine of one event type."""

    def __init__(self, event_type: str, timing: RuleTiming, new_id: Callable[[], str], session_id: str):
        self.event_type = event_type
        self._timing = timing
        self._publish_after = max(timing.onset_s, timing.min_duration_s)
        self._new_id = new_id
        self._session_id = session_id
        self._state = _State.IDLE
        self._start = Instant(0.0, 0.0)  # when the condition began
        self._gap = Instant(0.0, 0.0)  # when it went away (RELEASING)
        self._peak = 0.0
        self._evidence: dict = {}
        self._event: Event | None = None  # the published event, until its end

    @property
    def open_event(self) -> Event | None:
        return self._event

    def update(self, t: Instant, observation: Observation) -> EventChange | None:
        if observation.active:
            return self._on(t, observation)
        return self._off(t)

    def close(self, t: Instant) -> EventChange | None:
        """End a published event at `t` (the session stops), or at the time its condition went away.
        An event not yet published is dropped."""
        if self._event is None:
            self._state = _State.IDLE
            return None
        return self._finish(self._gap if self._state is _State.RELEASING else t)

    def _on(self, t: Instant, observation: Observation) -> EventChange | None:
        if self._state is _State.IDLE:
            self._state, self._start = _State.PENDING, observation.began or t
            self._peak, self._evidence = observation.confidence, observation.evidence or {}
        elif observation.confidence > self._peak:
            self._peak, self._evidence = observation.confidence, observation.evidence or {}
        if self._state is _State.RELEASING:
            self._state = _State.HELD
        if self._state is _State.PENDING and _reached(t.mono - self._start.mono, self._timing.onset_s):
            self._state = _State.HELD
        if (
            self._state is _State.HELD
            and self._event is None
            and _reached(t.mono - self._start.mono, self._publish_after)
        ):
            self._event = Event(
                id=self._new_id(),
                session_id=self._session_id,
                type=self.event_type,
                severity=self._timing.severity,
                start=self._start.wall,
                end=None,
                peak_confidence=self._peak,
                evidence=self._evidence,
            )
            return EventChange("start", self._event)
        return None

    def _off(self, t: Instant) -> EventChange | None:
        if self._state is _State.PENDING:
            self._state = _State.IDLE
        elif self._state is _State.HELD:
            self._state, self._gap = _State.RELEASING, t
        if self._state is _State.RELEASING and _reached(t.mono - self._gap.mono, self._timing.release_s):
            if self._event is None:  # ended before it lasted min_duration_s: never published
                self._state = _State.IDLE
                return None
            return self._finish(self._gap)
        return None

    def _finish(self, end: Instant) -> EventChange:
        assert self._event is not None
        change = EventChange("end", self._event.ended(end.wall, self._peak, self._evidence))
        self._state, self._event = _State.IDLE, None
        return change


class RuleEngine:
    """All rules of one session, fed one FrameAnalysis at a time, in order, plus the camera's
    online/offline state (frames stop arriving, so `camera_lost` cannot come from a FrameAnalysis), and the
    AudioAnalysis stream and the microphone's state when there is sound.
    It also calibrates the candidate's neutral pose, places and learns the screen's region, counts the
    focus figures (`metrics`) and, with identity checks on, keeps the candidate's reference (`identity`)."""

    def __init__(
        self, rules: RulesConfig, session_id: str, new_id: Callable[[], str],
        identity: IdentityConfig | None = None, reference: IdentityReference | None = None,
    ):
        self._attention = Attention(rules, lambda: self._calibration.neutral)
        self._calibration = Calibrator(rules.calibration, self._attention.learner.geometric.centre)
        self._focus = FocusCounter(self._attention, rules.eyes_closed)
        self.identity = IdentityCheck(identity or IdentityConfig(), reference)
        conditions = build_conditions(rules, self._attention, self.identity)
        self._mouth: Talking = conditions.pop("talking")  # type: ignore[assignment]
        self._trackers: list[tuple[Condition, ConditionTracker]] = [
            (condition, ConditionTracker(name, getattr(rules, name), new_id, session_id))
            for name, condition in conditions.items()
        ]
        self._voice = {name: ConditionTracker(name, getattr(rules, name), new_id, session_id) for name in VOICE_RULES}
        self._fusion = VoiceFusion(rules.talking, rules.other_voice)
        self._audio_until = float("-inf")  # mono until which sound counts as present
        self._camera_lost = ConditionTracker("camera_lost", rules.camera_lost, new_id, session_id)
        self._microphone_lost = ConditionTracker("microphone_lost", rules.microphone_lost, new_id, session_id)

    def update_camera(self, t: Instant, online: bool) -> list[EventChange]:
        """The capture layer says whether frames are arriving (it decides "lost" after its timeout)."""
        evidence = {"camera": "no frames", "threshold": "no frame within the capture timeout"}
        change = self._camera_lost.update(t, Observation(not online, 1.0, evidence))
        return [change] if change else []

    def update_microphone(self, t: Instant, online: bool) -> list[EventChange]:
        """The microphone delivers sound (it decides "lost" after its timeout, or on digital silence)."""
        evidence = {"microphone": "no sound", "threshold": "no sound within the timeout, or flat zero samples"}
        change = self._microphone_lost.update(t, Observation(not online, 1.0, evidence))
        return [change] if change else []

    def update(self, analysis: FrameAnalysis) -> list[EventChange]:
        t = Instant(analysis.mono, analysis.wall)
        self._attention.observe(analysis)
        if neutral := self._calibration.observe(analysis):
            self._calibrated(neutral)
        self._focus.count(analysis)
        mouth = self._mouth(analysis)
        self._fusion.mouth(analysis.mono, mouth)
        changes = [tracker.update(t, condition(analysis)) for condition, tracker in self._trackers]
        if analysis.mono > self._audio_until:  # no sound: talking from the mouth alone
            changes.append(self._voice["talking"].update(t, mouth))
        return [change for change in changes if change is not None]

    def update_audio(self, audio: AudioAnalysis) -> list[EventChange]:
        """One window of sound, in order, on the frames' clock."""
        t = Instant(audio.mono, audio.wall)
        self._audio_until = audio.end_mono + AUDIO_PRESENT_S
        self._focus.count_audio(audio)
        heard = self._fusion.observe(audio)
        changes = (self._voice[name].update(t, getattr(heard, name)) for name in VOICE_RULES)
        return [change for change in changes if change is not None]

    def close(self, t: Instant) -> list[EventChange]:
        if neutral := self._calibration.finish(t.wall):
            self._calibrated(neutral)
        changes = (tracker.close(t) for tracker in self._all_trackers())
        return [change for change in changes if change is not None]

    def _calibrated(self, neutral: Neutral) -> None:
        self._attention.learner.calibrated(neutral)
        self._focus.calibrated()

    @property
    def metrics(self) -> SessionMetrics:
        return SessionMetrics(self._focus.counts, self._calibration.neutral)

    @property
    def open_events(self) -> list[Event]:
        return [tracker.open_event for tracker in self._all_trackers() if tracker.open_event is not None]

    def _all_trackers(self) -> list[ConditionTracker]:
        return [tracker for _, tracker in self._trackers] + [*self._voice.values(), self._camera_lost,
                                                              self._microphone_lost]

