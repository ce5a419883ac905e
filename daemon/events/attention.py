"""Where the candidate's attention is: on the screen, or off it to one side.

Looking away means attention off the screen, not off the camera's axis. The screen's size, distance and
camera position ([rules.screen]) give the angular region the eyes cover while reading, seen from the
camera (HeadPose's signs: yaw > 0 toward image-right, pitch > 0 up). Calibration places that region on
this candidate: the neutral gaze is taken as the screen's centre, so a candidate sitting off-centre or a
camera mounted lower than configured shifts the region, not the verdict. The gaze of the session's first
minutes then widens it to the robust percentiles of where this candidate really looked (a candidate who
sits closer than configured reads at wider angles), by a bounded amount.

One `Look` per frame says whether attention is off the screen and to which side; looking_away,
looking_down, repeated_glances and the focus figures all read it, so it is computed once per frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from daemon.config import CalibrationConfig, RulesConfig, ScreenConfig
from daemon.events.model import Neutral
from daemon.inference.analysis import Face, FrameAnalysis, largest_face

# Sides as the candidate sees them. yaw > 0 points toward image-right, which is the candidate's left in an
# unmirrored camera picture.
LEFT, RIGHT, UP, DOWN = "left", "right", "up", "down"
SIDE_WORDS = {
    LEFT: "to the candidate's left (image right)",
    RIGHT: "to the candidate's right (image left)",
    UP: "up",
    DOWN: "down",
}


@dataclass(frozen=True, slots=True)
class Region:
    """An angular box, in degrees from the camera-to-face line."""

    yaw_min: float
    yaw_max: float
    pitch_min: float
    pitch_max: float

    @property
    def centre(self) -> tuple[float, float]:
        return (self.yaw_min + self.yaw_max) / 2, (self.pitch_min + self.pitch_max) / 2

    def shifted(self, yaw: float, pitch: float) -> Region:
        return Region(self.yaw_min + yaw, self.yaw_max + yaw, self.pitch_min + pitch, self.pitch_max + pitch)

    def beyond(self, yaw: float, pitch: float, margin: float) -> dict[str, float]:
        """Degrees past each side of the region plus `margin` (only the sides that are crossed)."""
        past = {
            LEFT: yaw - (self.yaw_max + margin),
            RIGHT: (self.yaw_min - margin) - yaw,
            UP: pitch - (self.pitch_max + margin),
            DOWN: (self.pitch_min - margin) - pitch,
        }
        return {side: degrees for side, degrees in past.items() if degrees > 0}

    def rounded(self) -> dict[str, float]:
        return {name: round(getattr(self, name), 1) for name in ("yaw_min", "yaw_max", "pitch_min", "pitch_max")}


def screen_region(screen: ScreenConfig) -> Region:
    """The screen seen from the eyes, in angles from the camera: the eyes are taken to face the camera's
    column (centred left-right) at the screen's distance; the camera sits on the top or bottom edge."""
    width, height, distance = screen.dimensions_cm
    half_width = math.degrees(math.atan2(width / 2, distance))
    tall = math.degrees(math.atan2(height, distance))
    if screen.camera == "top_centre":
        return Region(-half_width, half_width, -tall, 0.0)
    return Region(-half_width, half_width, 0.0, tall)


@dataclass(frozen=True, slots=True)
class Look:
    """Where the candidate's attention was on one frame. `side` is None while it is on the screen."""

    side: str | None
    beyond_deg: float  # how far past the limit that decided it
    cause: str  # "gaze", "head turn", "head raised", "head and gaze down"
    head_deg: tuple[float, float]  # head yaw and pitch from the neutral
    gaze_deg: tuple[float, float] | None  # gaze yaw and pitch (None: eyes closed or not measured)

    def evidence(self, region: Region, margin: float, limit: str) -> dict:
        """What an event shows of this look: the direction in words first, then the angles and limits."""
        assert self.side is not None
        head_yaw, head_pitch = self.head_deg
        evidence = {
            "direction": self.side,
            "description": f"attention off the screen {SIDE_WORDS[self.side]} "
                           f"({self.cause}, {self.beyond_deg:.0f} deg past the limit)",
            "cause": self.cause,
            "beyond_deg": round(self.beyond_deg, 1),
            "head_from_neutral_deg": {"yaw": round(head_yaw, 1), "pitch": round(head_pitch, 1)},
            "screen_region_deg": region.rounded(),
            "margin_deg": margin,
            "threshold": limit,
        }
        if self.gaze_deg is not None:
            evidence["gaze_deg"] = {"yaw": round(self.gaze_deg[0], 1), "pitch": round(self.gaze_deg[1], 1)}
        return evidence


class RegionLearner:
    """The screen's region for this candidate: the configured geometry, placed by calibration, widened by
    the gaze of the first `learn_s` seconds."""

    def __init__(self, screen: ScreenConfig, calibration: CalibrationConfig):
        self.geometric = screen_region(screen)
        self._config = calibration
        self._first_mono: float | None = None
        self._yaws: list[float] = []
        self._pitches: list[float] = []
        self._learning = calibration.learn_s > 0
        self.region: Region | None = None

    def calibrated(self, neutral: Neutral) -> None:
        """The neutral gaze (head pose without one) is where the screen's centre lies for this candidate."""
        yaw = neutral.gaze_yaw if neutral.gaze_yaw is not None else neutral.head_yaw
        pitch = neutral.gaze_pitch if neutral.gaze_pitch is not None else neutral.head_pitch
        centre_yaw, centre_pitch = self.geometric.centre
        self.region = self.geometric.shifted(yaw - centre_yaw, pitch - centre_pitch)
        if not self._learning:  # the learning window closed before calibration did
            self._refine()

    def observe(self, mono: float, gaze: tuple[float, float] | None) -> None:
        """One frame's gaze while the learning window is open (O(1); the percentiles are taken once)."""
        if not self._learning:
            return
        if self._first_mono is None:
            self._first_mono = mono
        if mono - self._first_mono >= self._config.learn_s - 1e-6:
            self._learning = False
            self._refine()
        elif gaze is not None:
            self._yaws.append(gaze[0])
            self._pitches.append(gaze[1])

    def _refine(self) -> None:
        """Widen the placed region to the learnt percentiles, by at most max_widening_deg a side, once both
        the window has closed and calibration has placed the region."""
        if self.region is None or len(self._yaws) < 2:
            return
        low, high = self._config.learn_percentile, 100 - self._config.learn_percentile
        yaw_low, yaw_high = np.percentile(self._yaws, (low, high))
        pitch_low, pitch_high = np.percentile(self._pitches, (low, high))
        cap, r = self._config.max_widening_deg, self.region
        self.region = Region(
            max(min(r.yaw_min, float(yaw_low)), r.yaw_min - cap),
            min(max(r.yaw_max, float(yaw_high)), r.yaw_max + cap),
            max(min(r.pitch_min, float(pitch_low)), r.pitch_min - cap),
            min(max(r.pitch_max, float(pitch_high)), r.pitch_max + cap),
        )
        self._yaws, self._pitches = [], []


class Attention:
    """Reads one `Look` per frame for the candidate (the largest face), from the calibrated neutral and
    the learnt region. Not judged before calibration ends."""

    def __init__(self, rules: RulesConfig, neutral: Callable[[], Neutral | None]):
        self._neutral = neutral
        self._away = rules.looking_away
        self._down = rules.looking_down
        self.margin = rules.screen.margin_deg
        self._closed_below = rules.eyes_closed.max_openness
        self.learner = RegionLearner(rules.screen, rules.calibration)
        self._last: tuple[FrameAnalysis, Look | None] | None = None

    @property
    def region(self) -> Region | None:
        return self.learner.region

    def observe(self, analysis: FrameAnalysis) -> None:
        """Feed the region's learning; call once per frame, before the rules read it."""
        face = candidate_face(analysis)
        self.learner.observe(analysis.mono, None if face is None else self._gaze(face))

    def read(self, analysis: FrameAnalysis) -> Look | None:
        """The candidate's Look on this frame; None without a face, a head pose or a calibration."""
        if self._last is not None and self._last[0] is analysis:
            return self._last[1]
        face = candidate_face(analysis)
        look = None if face is None else self.look(face)
        self._last = (analysis, look)
        return look

    def look(self, face: Face) -> Look | None:
        neutral, region = self._neutral(), self.region
        if face.pose is None or neutral is None or region is None:
            return None
        head = (face.pose.yaw - neutral.head_yaw, face.pose.pitch - neutral.head_pitch)
        gaze = self._gaze(face)
        gaze_past = {} if gaze is None else region.beyond(*gaze, self.margin)
        # Down is looking_down's, and needs the head down too.
        past: dict[str, tuple[float, str]] = {side: (deg, "gaze") for side, deg in gaze_past.items() if side != DOWN}
        if abs(head[0]) > self._away.head_yaw_deg:
            side = LEFT if head[0] > 0 else RIGHT
            past[side] = max(past.get(side, (0.0, "")), (abs(head[0]) - self._away.head_yaw_deg, "head turn"))
        if head[1] > self._away.head_up_deg:
            past[UP] = max(past.get(UP, (0.0, "")), (head[1] - self._away.head_up_deg, "head raised"))
        gaze_down = gaze_past.get(DOWN)
        if gaze_down and -head[1] > self._down.head_down_deg:
            past[DOWN] = (min(gaze_down, -head[1] - self._down.head_down_deg), "head and gaze down")
        if not past:
            return Look(None, 0.0, "", head, gaze)
        side = max(past, key=lambda s: past[s][0])
        return Look(side, past[side][0], past[side][1], head, gaze)

    def _gaze(self, face: Face) -> tuple[float, float] | None:
        """The gaze, unless the eyes count as closed (a blink: the iris is hidden, its position is noise)."""
        eyes_open = face.eye_openness is None or face.eye_openness >= self._closed_below
        return (face.gaze.yaw, face.gaze.pitch) if face.gaze is not None and eyes_open else None


def candidate_face(analysis: FrameAnalysis) -> Face | None:
    """The candidate is the largest face in view: the one sitting at the kiosk."""
    return largest_face(analysis.faces)


def without_landmarks(face: Face) -> Face:
    """What a Look reads of a face, without its 468 landmarks (kept while waiting for calibration)."""
    return replace(face, landmarks=None, iris=None)
