"""Rotated square regions of a frame, cut out as model inputs, and the way back to frame pixels.

Coordinates are continuous frame pixels: pixel (i, j) covers [i, i+1) x [j, j+1), as the models' own
outputs are. Angles are in radians, measured in the image (y down), so a positive angle is clockwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True, slots=True)
class Roi:
    """A square of side `size` centred on (cx, cy), whose own x axis points along `angle`."""

    cx: float
    cy: float
    size: float
    angle: float

    @classmethod
    def around(cls, points: np.ndarray, start: np.ndarray, end: np.ndarray, scale: float) -> Roi:
        """MediaPipe's rect from a set of points: the centre of their bounding box, the long side of it times
        `scale`, turned so that the line start -> end becomes horizontal."""
        low, high = points.min(axis=0), points.max(axis=0)
        centre = (low + high) / 2
        return cls(float(centre[0]), float(centre[1]), float(max(high - low)) * scale, line_angle(start, end))

    def crop_to_frame(self, side: int) -> np.ndarray:
        """The 2x3 affine map from crop pixels (a side x side input) to frame pixels."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        k = self.size / side
        linear = np.array([[k * cos, -k * sin], [k * sin, k * cos]])
        offset = np.array([self.cx, self.cy]) - linear @ np.array([side / 2, side / 2])
        return np.hstack([linear, offset[:, None]])

    def box(self) -> tuple[float, float, float, float]:
        """The axis-aligned (x1, y1, x2, y2) around the rotated square."""
        half = self.size / 2 * (abs(math.cos(self.angle)) + abs(math.sin(self.angle)))
        return self.cx - half, self.cy - half, self.cx + half, self.cy + half


def line_angle(start: np.ndarray, end: np.ndarray) -> float:
    return math.atan2(float(end[1] - start[1]), float(end[0] - start[0]))


def cut_rgb(image_bgr: np.ndarray, crop_to_frame: np.ndarray, side: int, flip: bool = False) -> np.ndarray:
    """The side x side crop as RGB uint8, bilinear, edges replicated (as MediaPipe's ImageToTensorCalculator).

    `flip` mirrors the crop left-right (the iris model only knows one eye). Only the part of the frame the
    crop samples is converted, to 4 channels: OpenCV's bilinear warp of 3-channel uint8 is 4x slower.
    """
    matrix = crop_to_frame.copy()
    if flip:  # crop x -> side - x
        matrix[:, 2] += matrix[:, 0] * side
        matrix[:, 0] = -matrix[:, 0]
    # warpAffine works on pixel centres: centre u maps through the continuous map at u + 0.5, minus 0.5.
    matrix[:, 2] += matrix[:, :2] @ np.array([0.5, 0.5]) - 0.5
    corners = matrix @ np.array([[0, 0, side - 1, side - 1], [0, side - 1, 0, side - 1], [1, 1, 1, 1]])
    height, width = image_bgr.shape[:2]
    x1, y1 = (max(0, min(size - 1, math.floor(low) - 1)) for size, low in zip((width, height), corners.min(axis=1)))
    x2, y2 = (max(1, min(size, math.ceil(high) + 2)) for size, high in zip((width, height), corners.max(axis=1)))
    x2, y2 = max(x2, x1 + 1), max(y2, y1 + 1)
    region = cv2.cvtColor(image_bgr[y1:y2, x1:x2], cv2.COLOR_BGR2RGBA)
    matrix[:, 2] -= (x1, y1)
    crop = cv2.warpAffine(
        region, matrix, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    return cv2.cvtColor(crop, cv2.COLOR_RGBA2RGB)


def to_unit_range(crop_rgb: np.ndarray, out: np.ndarray) -> None:
    """uint8 RGB -> float32 in [0, 1], written into a model's preallocated input (a float32 scale keeps
    the arithmetic in float32)."""
    np.multiply(crop_rgb, _ONE_255, out=out, casting="unsafe")


_ONE_255 = np.float32(1 / 255)


def to_frame(points: np.ndarray, crop_to_frame: np.ndarray) -> np.ndarray:
    """Map (n, 2) or (n, 3) crop points to frame pixels; z is scaled like x and y."""
    mapped = points.astype(np.float32, copy=True)
    mapped[:, :2] = points[:, :2] @ crop_to_frame[:, :2].T + crop_to_frame[:, 2]
    if points.shape[1] > 2:
        mapped[:, 2] *= math.hypot(crop_to_frame[0, 0], crop_to_frame[1, 0])
    return mapped


def to_frame_is_exact() -> bool:
    """Whether to_frame's matrix product is right on this machine, for a mesh's worth of points. A BLAS
    kernel that gets small products wrong puts the landmarks in the wrong places; seen: numpy's OpenBLAS
    under qemu's default (SVE) arm64 CPU, 348 of 468 points off."""
    points = (np.arange(936, dtype=np.float32).reshape(468, 2) * 7) % 193
    crop_to_frame = Roi(240.0, 400.0, 500.0, 0.1).crop_to_frame(192)
    (a, b, tx), (c, d, ty) = crop_to_frame.tolist()
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    expected = np.stack([a * x + b * y + tx, c * x + d * y + ty], axis=1)
    return bool(np.allclose(to_frame(points, crop_to_frame), expected, atol=0.01))
