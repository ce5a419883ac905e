"""What the inference stage says about one frame: the only thing the rules see."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from daemon.capture.frame import FrameQuality


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in frame pixels."""

    x: float
    y: float
    w: float
    h: float

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class HeadPose:
    """Head rotation in degrees, in image terms: yaw > 0 when the nose points toward image-right,
    pitch > 0 when it points up, roll > 0 when the head tilts clockwise in the image. Measured from the
    line between the camera and the face: yaw = pitch = 0 is facing the camera, wherever the face is."""

    yaw: float
    pitch: float
    roll: float


@dataclass(frozen=True, slots=True)
class Gaze:
    """Where the eyes point, in degrees, same signs as HeadPose: the head pose plus the eyes' rotation
    in the head (`eye_yaw`, `eye_pitch`, from the iris position between the eye corners and lids)."""

    yaw: float
    pitch: float
    eye_yaw: float
    eye_pitch: float


@dataclass(frozen=True, slots=True)
class Face:
    """One face. Keypoints follow BlazeFace: right eye, left eye, nose tip, mouth, right ear, left ear
    (the subject's right, i.e. image-left in an unmirrored frame), in frame pixels.

    The rest is filled when the landmark stage ran on this face: the 468-point mesh (frame pixels,
    z in the same scale), head pose, gaze, and eye/mouth openness (lid gap / eye width averaged over
    both eyes; inner-lip gap / mouth width). Then `box` is the mesh's bounding box, `score` the mesh's
    face-presence probability, and the keypoints come from the mesh and irises; a face without landmarks
    (beyond inference.max_faces) has BlazeFace's box, score and keypoints."""

    box: Box
    score: float
    keypoints: tuple[tuple[float, float], ...]
    landmarks: np.ndarray | None = None  # (468, 3) float32
    pose: HeadPose | None = None
    gaze: Gaze | None = None
    eye_openness: float | None = None
    mouth_openness: float | None = None
    iris: np.ndarray | None = None  # (2, 5, 3) float32: eye A then eye B; iris centre, then 4 points on its edge


def largest_face(faces: tuple[Face, ...]) -> Face | None:
    """The candidate is the largest face in view: the one sitting at the kiosk."""
    return max(faces, key=lambda face: face.box.w * face.box.h, default=None)


@dataclass(frozen=True, slots=True)
class IdentitySample:
    """One embedding of the candidate's face (daemon/inference/face_embedding.py), taken on a face big and
    frontal enough to judge."""

    embedding: np.ndarray  # float32 unit vector
    eye_distance_px: float
    yaw_deg: float
    crop: np.ndarray  # the aligned face crop it was taken on (BGR uint8), for a reference photo


@dataclass(frozen=True, slots=True)
class DetectedObject:
    label: str  # COCO name: "person", "cell phone", "book", "laptop", ...
    score: float
    box: Box


@dataclass(frozen=True, slots=True)
class FrameAnalysis:
    seq: int
    mono: float
    wall: float
    width: int
    height: int
    faces: tuple[Face, ...]
    # The object detector runs at its own, lower rate off the per-frame path: these are its latest
    # results, found on the frame taken at `objects_mono` (None until it has run once).
    objects: tuple[DetectedObject, ...] = ()
    objects_mono: float | None = None
    # Identity checks run every identity.interval_s off the per-frame path: the latest embedding of the
    # candidate, taken on the frame at `identity_mono` (None until one was taken, or with identity off).
    identity: IdentitySample | None = None
    identity_mono: float | None = None
    quality: FrameQuality | None = None  # computed by capture; None when the source does not measure it
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AudioAnalysis:
    """What the voice stage says about one short window of sound (daemon/inference/voice.py), on the same
    clocks as the frames: the rules take it as its own stream beside the FrameAnalysis stream."""

    mono: float  # the window's first sample
    wall: float
    duration: float  # seconds
    level_dbfs: float  # RMS level, dB below full scale (-100 for digital silence)
    speech_probability: float  # the voice activity model's, 0..1
    speech: bool  # inside a stretch of speech (the model's hysteresis: on at the threshold, off 0.15 below)

    @property
    def end_mono(self) -> float:
        return self.mono + self.duration
