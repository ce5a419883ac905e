"""What the inference stage says about one frame: the only thing the rules see."""

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in frame pixels."""

    x: float
    y: float
    w: float
    h: float

    def iou(self, other: "Box") -> float:
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face. Keypoints follow BlazeFace: right eye, left eye, nose tip, mouth, right ear, left ear
    (the subject's right, i.e. image-left in an unmirrored frame), in frame pixels."""

    box: Box
    score: float
    keypoints: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class FrameAnalysis:
    seq: int
    mono: float
    wall: float
    width: int
    height: int
    faces: tuple[Face, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)
