"""The unit that flows from a frame source to the analysis stage."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class FrameQuality:
    """Cheap measurements of the picture itself, for the camera tamper rules (covered, blurred,
    frozen, moved). Units, measured ranges and recommended thresholds: daemon/capture/quality.py."""

    brightness: float  # mean luma, 0..255
    contrast: float  # standard deviation of luma
    sharpness: float  # variance of the Laplacian on a downscaled grey frame
    change: float  # mean absolute luma difference to the previous frame, 0..255
    view_shift: float | None = None  # 0 = same view as the session's reference, 1 = nothing in common


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured picture and when it was taken.

    `mono` orders frames and measures durations (it never jumps); `wall` is what reports show.
    For a replayed file both come from the file's own timeline, so a replay is deterministic.
    """

    image: np.ndarray  # BGR, uint8, H x W x 3
    seq: int  # 0, 1, 2... in capture order, across reopenings; gaps mean dropped frames
    mono: float  # seconds
    wall: float  # seconds since the epoch
    quality: FrameQuality | None = None

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]
