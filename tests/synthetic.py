"""Synthetic FrameAnalysis streams for the rule tests: an ordinary exam scene and its parts.

Streams run at 8 fps: a frame period of 0.125 s is exact in binary floating point, so "the condition
held for exactly onset_s" is an exact comparison and the boundary tests test the rule, not rounding.
`mono` starts at an arbitrary camera uptime and `wall` is `mono` plus a constant offset, so any mix-up
of the two clocks shows in the asserts.
"""

from __future__ import annotations

from daemon.capture.frame import FrameQuality
from daemon.events.rules import Instant
from daemon.inference.analysis import Box, DetectedObject, Face, FrameAnalysis, Gaze, HeadPose

FPS = 8
PERIOD = 1 / FPS
MONO0 = 5000.0
WALL_OFFSET = 1_700_000_000.0

def mono(i: int) -> float:
    return MONO0 + i * PERIOD


def wall(i: int) -> float:
    return mono(i) + WALL_OFFSET


def at(i: int) -> Instant:
    return Instant(mono(i), wall(i))


FACE_BOX = Box(100.0, 80.0, 120.0, 120.0)  # centre (160, 140)
GOOD_PICTURE = FrameQuality(brightness=120.0, contrast=45.0, sharpness=250.0, change=3.0, view_shift=0.02)


def face(
    score: float = 0.9, *, yaw: float = 0.0, pitch: float = 0.0, eye_yaw: float = 0.0, eye_pitch: float = 0.0,
    eyes: float | None = 0.3, mouth: float | None = 0.02, box: Box = FACE_BOX, measured: bool = True,
    roll: float = 0.0,
) -> Face:
    """A face looking at the screen, eyes open, mouth closed, unless told otherwise; `measured=False`:
    only what the detector gives (no pose, gaze or openness)."""
    if not measured:
        return Face(box, score, keypoints=())
    return Face(
        box, score, keypoints=(), pose=HeadPose(yaw, pitch, roll),
        gaze=Gaze(yaw + eye_yaw, pitch + eye_pitch, eye_yaw, eye_pitch), eye_openness=eyes, mouth_openness=mouth,
    )


def frame(i: int, scores: tuple[float, ...] = (), *, wall_step: float = 0.0) -> FrameAnalysis:
    """Frame `i` with one face per score; `wall_step` shifts this frame's wall clock (an NTP step)."""
    faces = tuple(face(score) for score in scores)
    return FrameAnalysis(seq=i, mono=mono(i), wall=wall(i) + wall_step, width=640, height=480, faces=faces)


def scene(i: int, *, faces: tuple[Face, ...] = (face(),), objects: tuple[DetectedObject, ...] = (),
          quality: FrameQuality = GOOD_PICTURE, wall_step: float = 0.0) -> FrameAnalysis:
    """Frame `i` of an ordinary exam: the candidate at the screen, a good picture, the object detector
    current and seeing nothing, unless told otherwise."""
    return FrameAnalysis(
        seq=i, mono=mono(i), wall=wall(i) + wall_step, width=640, height=480, faces=faces,
        objects=objects, objects_mono=mono(i), quality=quality,
    )


ASIDE_BOX = Box(400.0, 200.0, 60.0, 90.0)  # on the desk beside the candidate


def seen(label: str, score: float = 0.8, box: Box = ASIDE_BOX) -> DetectedObject:
    return DetectedObject(label, score, box)
