"""The unit that flows from a frame source to the analysis stage."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured picture and when it was taken.

    `mono` orders frames and measures durations (it never jumps); `wall` is what reports show.
    For a replayed file both come from the file's own timeline, so a replay is deterministic.
    """

    image: np.ndarray  # BGR, uint8, H x W x 3
    seq: int  # 0, 1, 2... per source opening; gaps mean dropped frames
    mono: float  # seconds
    wall: float  # seconds since the epoch

    @property
    def width(self) -> int:
        return self.image.shape[1]

    @property
    def height(self) -> int:
        return self.image.shape[0]
