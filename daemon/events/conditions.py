"""What each rule reads off one frame: whether its condition holds, how sure, and on what evidence.

A condition is a callable taking one FrameAnalysis, built from its rule's config. Most look at that frame
alone; `talking` keeps a short window of mouth openness, `repeated_glances` the recent glances, and the
attention rules read the region calibration placed (attention.py), so the whole stays a pure function of
the FrameAnalysis stream.

Face rules (looking_away, eyes_closed, talking) look at the candidate: the largest face in view.
Confidence of a measured condition says how far past its threshold the value went: 0.5 at the threshold,
1.0 at twice an upper limit or at zero for a lower limit. A detection's confidence is its score.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from daemon.capture.frame import FrameQuality
from daemon.config import (
    CameraBlurredRule,
    CameraCoveredRule,
    CameraFrozenRule,
    CameraMovedRule,
    EyesClosedRule,
    LookingDownRule,
    ObjectRule,
    RepeatedGlancesRule,
    RulesConfig,
    RuleTiming,
    TalkingRule,
)
from daemon.events.attention import DOWN, LEFT, RIGHT, SIDE_WORDS, UP, Attention, Look, candidate_face
from daemon.events.model import Instant
from daemon.inference.analysis import DetectedObject, FrameAnalysis


@dataclass(frozen=True, slots=True)
class Observation:
    """What one rule reads off one frame: whether its condition holds, how sure, and on what evidence."""

    active: bool
    confidence: float = 0.0
    evidence: dict | None = None
    began: Instant | None = None  # when the condition really began, if before this frame (else: now)


Condition = Callable[[FrameAnalysis], Observation]
CLEAR = Observation(False)


def past_upper(value: float, limit: float) -> float:
    return min(1.0, 0.5 * value / limit) if limit > 0 else 1.0


def past_lower(value: float, limit: float) -> float:
    return min(1.0, 0.5 + 0.5 * (limit - value) / limit) if limit > 0 else 1.0


def _r(value: float) -> float:
    return round(value, 3)


# --- faces -----------------------------------------------------------------------------------------


def no_face(analysis: FrameAnalysis) -> Observation:
    if analysis.faces:
        return CLEAR
    return Observation(True, 1.0, {"faces": 0, "threshold": "faces < 1"})


def multiple_faces(analysis: FrameAnalysis) -> Observation:
    if len(analysis.faces) < 2:
        return CLEAR
    scores = sorted((face.score for face in analysis.faces), reverse=True)
    # As sure as the second most confident face: that face is what makes it "several".
    return Observation(True, scores[1], {"faces": len(analysis.faces), "scores": [_r(s) for s in scores],
                                         "threshold": "faces > 1"})


class LookingAway:
    """Attention off the screen to the left, the right or up (attention.py), from the calibrated neutral;
    not raised before calibration ends. Its evidence names the direction in words."""

    def __init__(self, attention: Attention):
        self._attention = attention

    def __call__(self, analysis: FrameAnalysis) -> Observation:
        look = self._attention.read(analysis)
        if look is None or look.side is None or look.side == DOWN:
            return CLEAR
        return _off_screen(self._attention, look, "gaze outside the screen's region plus margin, or head turned "
                           "past its limit")


class LookingDown:
    """Head pitched down and gaze below the screen together (a phone in the lap)."""

    def __init__(self, attention: Attention, rule: LookingDownRule):
        self._attention = attention
        self._head_limit = rule.head_down_deg
        self._limit = f"gaze below the screen's region plus margin and head down > {rule.head_down_deg:g} deg"

    def __call__(self, analysis: FrameAnalysis) -> Observation:
        look = self._attention.read(analysis)
        if look is None or look.side != DOWN:
            return CLEAR
        observation = _off_screen(self._attention, look, self._limit)
        assert observation.evidence is not None
        observation.evidence["head_limit_deg"] = self._head_limit
        return observation


def _off_screen(attention: Attention, look: Look, limit: str) -> Observation:
    assert attention.region is not None  # a Look has a side only once the region is placed
    # 0.5 at the limit, 1.0 at 10 degrees past it.
    confidence = min(1.0, 0.5 + look.beyond_deg / 20)
    return Observation(True, confidence, look.evidence(attention.region, attention.margin, limit))


class RepeatedGlances:
    """Looks off the screen too short to become events, to the same side, `count` times within `window_s`.

    A glance lasts at least min_glance_s and ends before the looking_away (looking_down, for down) event
    could have been published. The observation holds on the frame that completes the count and says when
    the first counted glance began, so the event spans the glances; those glances are then spent."""

    def __init__(self, attention: Attention, rule: RepeatedGlancesRule, away: RuleTiming, down: RuleTiming):
        self._attention = attention
        self._rule = rule
        self._longest = {side: max(timing.onset_s, timing.min_duration_s)
                         for side, timing in ((LEFT, away), (RIGHT, away), (UP, away), (DOWN, down))}
        self._side: str | None = None
        self._since = Instant(0.0, 0.0)
        self._glances: dict[str, deque[tuple[Instant, float]]] = {side: deque() for side in self._longest}

    def __call__(self, analysis: FrameAnalysis) -> Observation:
        look = self._attention.read(analysis)
        side = None if look is None else look.side
        now = Instant(analysis.mono, analysis.wall)
        if side == self._side:
            return CLEAR
        ended, began = self._side, self._since
        self._side, self._since = side, now
        if ended is None:
            return CLEAR
        lasted = now.mono - began.mono
        if not self._rule.min_glance_s - 1e-6 <= lasted < self._longest[ended] - 1e-6:
            return CLEAR
        glances = self._glances[ended]
        glances.append((began, lasted))
        while now.mono - glances[0][0].mono > self._rule.window_s + 1e-6:
            glances.popleft()
        if len(glances) < self._rule.count:
            return CLEAR
        first = glances[0][0]
        evidence = {
            "direction": ended,
            "description": f"{len(glances)} glances off the screen {SIDE_WORDS[ended]} within "
                           f"{now.mono - first.mono:.0f} s",
            "glances": len(glances),
            "glance_s": [round(duration, 2) for _, duration in glances],
            "limit": self._rule.count, "window_s": self._rule.window_s,
            "threshold": f">= {self._rule.count} glances ({self._rule.min_glance_s:g} s or longer, each shorter "
                         f"than an event) to one side within {self._rule.window_s:g} s",
        }
        glances.clear()
        return Observation(True, 1.0, evidence, began=first)


def eyes_closed(rule: EyesClosedRule, analysis: FrameAnalysis) -> Observation:
    face = candidate_face(analysis)
    if face is None or face.eye_openness is None or face.eye_openness >= rule.max_openness:
        return CLEAR
    return Observation(True, past_lower(face.eye_openness, rule.max_openness), {
        "eye_openness": _r(face.eye_openness), "limit": rule.max_openness,
        "threshold": f"eye_openness < {rule.max_openness:g}",
    })


class Talking:
    """Sustained mouth movement: the spread of the candidate's mouth openness over a sliding window.
    A frame without the candidate's mouth empties the window (the movement must be seen, not assumed)."""

    MIN_SAMPLES = 3

    def __init__(self, rule: TalkingRule):
        self._rule = rule
        self._window: deque[tuple[float, float]] = deque()

    def __call__(self, analysis: FrameAnalysis) -> Observation:
        face = candidate_face(analysis)
        if face is None or face.mouth_openness is None:
            self._window.clear()
            return CLEAR
        window = self._window
        window.append((analysis.mono, face.mouth_openness))
        while analysis.mono - window[0][0] > self._rule.window_s + 1e-6:
            window.popleft()
        # Judge only a window that is at least half full, so two frames after a gap cannot decide.
        if len(window) < self.MIN_SAMPLES or analysis.mono - window[0][0] < self._rule.window_s / 2:
            return CLEAR
        values = [value for _, value in window]
        mean = sum(values) / len(values)
        spread = (sum((value - mean) ** 2 for value in values) / len(values)) ** 0.5
        if spread < self._rule.min_mouth_std:
            return CLEAR
        return Observation(True, past_upper(spread, self._rule.min_mouth_std), {
            "mouth_std": _r(spread), "samples": len(values), "window_s": self._rule.window_s,
            "limit": self._rule.min_mouth_std,
            "threshold": f"std(mouth_openness over {self._rule.window_s:g} s) >= {self._rule.min_mouth_std:g}",
        })


# --- objects ---------------------------------------------------------------------------------------


def _fresh_objects(rule: ObjectRule, analysis: FrameAnalysis, label: str) -> list[DetectedObject]:
    """The detector's latest results for `label` at the rule's score, unless they are too old to count."""
    if analysis.objects_mono is None or analysis.mono - analysis.objects_mono > rule.max_age_s:
        return []
    found = [o for o in analysis.objects if o.label == label and o.score >= rule.min_score]
    return sorted(found, key=lambda o: o.score, reverse=True)


def _box(obj: DetectedObject) -> list[float]:
    return [_r(obj.box.x), _r(obj.box.y), _r(obj.box.w), _r(obj.box.h)]


def object_seen(rule: ObjectRule, label: str, analysis: FrameAnalysis) -> Observation:
    found = _fresh_objects(rule, analysis, label)
    if not found:
        return CLEAR
    best = found[0]
    return Observation(True, best.score, {
        "label": label, "score": _r(best.score), "box": _box(best), "detections": len(found), "limit": rule.min_score,
        "threshold": f"{label} score >= {rule.min_score:g}",
    })


def extra_person(rule: ObjectRule, analysis: FrameAnalysis) -> Observation:
    """A person who is not the candidate: a person box that does not hold the candidate's face centre;
    without a face in view, a second person."""
    persons = _fresh_objects(rule, analysis, "person")
    face = candidate_face(analysis)
    if face is None:
        others = persons[1:]
    else:
        cx, cy = face.box.x + face.box.w / 2, face.box.y + face.box.h / 2
        others = [p for p in persons if not (p.box.x <= cx <= p.box.x + p.box.w and p.box.y <= cy <= p.box.y + p.box.h)]
    if not others:
        return CLEAR
    best = others[0]
    return Observation(True, best.score, {
        "persons": len(persons), "score": _r(best.score), "box": _box(best), "limit": rule.min_score,
        "threshold": f"a person (score >= {rule.min_score:g}) who is not the candidate",
    })


# --- the camera itself -----------------------------------------------------------------------------
# A covered lens also shows no detail, no change and not the reference view: while the picture counts as
# covered, that is camera_covered's event alone, not also blurred, frozen or moved.


def _is_covered(rule: CameraCoveredRule, quality: FrameQuality) -> bool:
    return quality.brightness < rule.max_brightness or quality.contrast < rule.max_contrast


def camera_covered(rule: CameraCoveredRule, analysis: FrameAnalysis) -> Observation:
    q = analysis.quality
    if q is None or not _is_covered(rule, q):
        return CLEAR
    confidence = max(
        past_lower(q.brightness, rule.max_brightness) if q.brightness < rule.max_brightness else 0.0,
        past_lower(q.contrast, rule.max_contrast) if q.contrast < rule.max_contrast else 0.0,
    )
    return Observation(True, confidence, {
        "brightness": _r(q.brightness), "contrast": _r(q.contrast),
        "brightness_limit": rule.max_brightness, "contrast_limit": rule.max_contrast,
        "threshold": f"brightness < {rule.max_brightness:g} or contrast < {rule.max_contrast:g}",
    })


def camera_blurred(rule: CameraBlurredRule, covered: CameraCoveredRule, analysis: FrameAnalysis) -> Observation:
    q = analysis.quality
    if q is None or q.contrast <= 0 or _is_covered(covered, q):
        return CLEAR
    relative = q.sharpness / q.contrast**2  # the Laplacian's variance grows with contrast squared
    if relative >= rule.max_relative_sharpness:
        return CLEAR
    return Observation(True, past_lower(relative, rule.max_relative_sharpness), {
        "sharpness": _r(q.sharpness), "contrast": _r(q.contrast), "relative_sharpness": round(relative, 4),
        "limit": rule.max_relative_sharpness,
        "threshold": f"sharpness / contrast^2 < {rule.max_relative_sharpness:g}",
    })


def camera_frozen(rule: CameraFrozenRule, covered: CameraCoveredRule, analysis: FrameAnalysis) -> Observation:
    q = analysis.quality
    if q is None or q.change > rule.max_change or _is_covered(covered, q):
        return CLEAR
    return Observation(True, past_lower(q.change, rule.max_change), {
        "change": _r(q.change), "limit": rule.max_change, "threshold": f"change <= {rule.max_change:g}",
    })


def camera_moved(rule: CameraMovedRule, covered: CameraCoveredRule, analysis: FrameAnalysis) -> Observation:
    q = analysis.quality
    if q is None or q.view_shift is None or q.view_shift < rule.min_view_shift or _is_covered(covered, q):
        return CLEAR
    return Observation(True, past_upper(q.view_shift, rule.min_view_shift), {
        "view_shift": _r(q.view_shift), "limit": rule.min_view_shift,
        "threshold": f"view_shift >= {rule.min_view_shift:g}",
    })


# The rules that read the object detector's results: not checked on a kiosk without one (face-only).
OBJECT_RULES: tuple[str, ...] = ("phone", "book", "extra_person")


def build_conditions(
    rules: RulesConfig, attention: Attention, identity_mismatch: Condition = lambda _: CLEAR
) -> dict[str, Condition]:
    """Every frame-based rule by event type (camera_lost comes from capture, not from a frame);
    identity_mismatch is the session's IdentityCheck (events/identity.py) when identity checks are on."""
    return {
        "no_face": no_face,
        "multiple_faces": multiple_faces,
        "looking_away": LookingAway(attention),
        "looking_down": LookingDown(attention, rules.looking_down),
        "repeated_glances": RepeatedGlances(attention, rules.repeated_glances, rules.looking_away, rules.looking_down),
        "eyes_closed": partial(eyes_closed, rules.eyes_closed),
        "talking": Talking(rules.talking),
        "phone": partial(object_seen, rules.phone, "cell phone"),
        "book": partial(object_seen, rules.book, "book"),
        "extra_person": partial(extra_person, rules.extra_person),
        "camera_covered": partial(camera_covered, rules.camera_covered),
        "camera_blurred": partial(camera_blurred, rules.camera_blurred, rules.camera_covered),
        "camera_frozen": partial(camera_frozen, rules.camera_frozen, rules.camera_covered),
        "camera_moved": partial(camera_moved, rules.camera_moved, rules.camera_covered),
        "identity_mismatch": identity_mismatch,
    }
