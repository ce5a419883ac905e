"""Hands, found by MediaPipe's palm detector (palm_detection_lite.tflite): where to look for a held phone.

Only the palm detector runs, once per object pass: the pass needs where a hand is, not its 21 joints, so
the hand landmark model (another 2 MB and a run per hand) is not used. A palm box covers the palm only;
`reach()` widens it to the square a held object lies in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.inference.face_detector import BlazeDetector

PALM_FILE = "palm_detection_lite.tflite"


@dataclass(frozen=True, slots=True)
class Hand:
    """A palm in frame pixels: its box (x1, y1, x2, y2) and score."""

    box: tuple[float, float, float, float]
    score: float

    def reach(self, scale: float) -> tuple[float, float, float, float]:
        """The square (x1, y1, x2, y2) of `scale` times the palm's size, centred on the palm: what the hand
        holds is in there (a phone held flat, at the ear or in front of the face)."""
        x1, y1, x2, y2 = self.box
        half = max(x2 - x1, y2 - y1) * scale / 2
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        return cx - half, cy - half, cx + half, cy + half


class HandDetector:
    def __init__(self, model_path: Path, threads: int = 1, max_hands: int = 4) -> None:
        self._palms = BlazeDetector(model_path, "palm", threads)
        self._max_hands = max_hands

    def detect(self, image_bgr: np.ndarray) -> list[Hand]:
        rows, scores = self._palms.detect_rows(image_bgr)
        top = slice(0, self._max_hands)  # best score first
        return [Hand(tuple(row[:4].tolist()), float(score)) for row, score in zip(rows[top], scores[top])]
