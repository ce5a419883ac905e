"""BlazeFace face detection (MediaPipe short- and full-range models) and BlazePalm palm detection on LiteRT.

Both are MediaPipe SSD detectors with one decoding: SsdAnchorsCalculator anchors,
TensorsToDetectionsCalculator decoding and NonMaxSuppressionCalculator in WEIGHTED mode. They differ in
input size, anchor layout, input range and number of keypoints (`_VARIANTS`).
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from daemon.inference.analysis import Box, Face
from daemon.inference.runtime import TFLiteModel

log = logging.getLogger(__name__)

_NMS_IOU = 0.3
# MediaPipe clips logits to ±100; in float32 exp(100) overflows, ±80 gives the same scores to 1e-35.
_LOGIT_CLIP = 80.0


@dataclass(frozen=True, slots=True)
class _Variant:
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # one per aspect ratio (only 1.0), plus one if interpolated_scale_aspect_ratio > 0
    min_score: float
    keypoints: int
    unit_range: bool = False  # input RGB in [0, 1] (palm) instead of [-1, 1] (faces)

    @property
    def row(self) -> int:
        """One row of the regressor output: centre (dx, dy), size (w, h), then the keypoints (x, y)."""
        return 4 + 2 * self.keypoints


_VARIANTS = {
    "short": _Variant(input_size=128, strides=(8, 16, 16, 16), anchors_per_layer=2, min_score=0.5, keypoints=6),
    # Full range: MediaPipe's graph keeps 0.6; short range's 0.5 finds 42 of faces.json's 43 faces instead of
    # 41 (the 42nd scores 0.59). Chosen on faces.json; checked on the no-face photos (none), the group photos'
    # counts (never above the label) and cap12 (one face in every sampled frame): bench/eval_stills.py.
    "full": _Variant(input_size=192, strides=(4,), anchors_per_layer=1, min_score=0.5, keypoints=6),
    # palm_detection_lite.tflite: MediaPipe's palm_detection_cpu graph (min score 0.5, 7 keypoints: wrist,
    # then the finger bases index to pinky, then the thumb's two lowest joints).
    "palm": _Variant(
        input_size=192, strides=(8, 16, 16, 16), anchors_per_layer=2, min_score=0.5, keypoints=7, unit_range=True
    ),
}
FACE_VARIANTS = ("short", "full")


def ssd_anchor_centres(input_size: int, strides: tuple[int, ...], anchors_per_layer: int) -> np.ndarray:
    """Anchor centres (N, 2) as (x, y) in [0, 1], in the order of MediaPipe's SsdAnchorsCalculator.

    With fixed_anchor_size every anchor is 1x1, so only the centres matter. Consecutive layers with the
    same stride share one grid, and each cell lists the anchors of all those layers together.
    """
    groups: list[np.ndarray] = []
    layer = 0
    while layer < len(strides):
        stride, per_cell = strides[layer], 0
        while layer < len(strides) and strides[layer] == stride:
            per_cell += anchors_per_layer
            layer += 1
        grid = math.ceil(input_size / stride)
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        centres = (np.stack([xs, ys], axis=-1).reshape(-1, 2) + 0.5) / grid
        groups.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(groups).astype(np.float32)


def weighted_nms(locs: np.ndarray, scores: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-maximum suppression.

    `locs` is (n, k) with the box as (xmin, ymin, xmax, ymax) in the first 4 columns; any further columns
    (keypoints) are averaged along with it. Each cluster (IoU > threshold with its best member) becomes
    one detection: the score-weighted mean of its rows, with the best member's score.
    Loops once per output detection, not per candidate.
    """
    order = np.argsort(-scores, kind="stable")
    locs, scores = locs[order], scores[order]
    x1, y1, x2, y2 = locs[:, 0], locs[:, 1], locs[:, 2], locs[:, 3]
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    remaining = np.arange(len(scores))
    kept_locs, kept_scores = [], []
    while remaining.size:
        top = remaining[0]
        iw = np.clip(np.minimum(x2[top], x2[remaining]) - np.maximum(x1[top], x1[remaining]), 0, None)
        ih = np.clip(np.minimum(y2[top], y2[remaining]) - np.maximum(y1[top], y1[remaining]), 0, None)
        inter = iw * ih
        union = areas[top] + areas[remaining] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        in_cluster = iou > iou_threshold
        in_cluster[0] = True  # a degenerate (zero-area) box must still leave the queue
        cluster = remaining[in_cluster]
        weights = scores[cluster]
        kept_locs.append(weights @ locs[cluster] / weights.sum())
        kept_scores.append(scores[top])
        remaining = remaining[~in_cluster]
    return np.array(kept_locs, dtype=np.float32).reshape(-1, locs.shape[1]), np.array(kept_scores)


@dataclass(frozen=True, slots=True)
class _Letterbox:
    """Where a frame of one size lands in the square model input, and how to map results back."""

    frame_size: tuple[int, int]  # (height, width) this letterbox was fitted for
    width: int  # of the resized frame inside the input square
    height: int
    left: int
    top: int
    # frame = normalized_input * scale - offset, per column of a (x, y, x, y, ...) row
    scale: np.ndarray
    offset: np.ndarray

    @classmethod
    def fit(cls, frame_height: int, frame_width: int, size: int, row: int) -> "_Letterbox":
        ratio = size / max(frame_height, frame_width)
        width = max(1, round(frame_width * ratio))
        height = max(1, round(frame_height * ratio))
        left, top = (size - width) // 2, (size - height) // 2
        # Per-axis ratios: rounding the resized size makes them differ slightly.
        rx, ry = width / frame_width, height / frame_height
        scale = np.tile([size / rx, size / ry], row // 2).astype(np.float32)
        offset = np.tile([left / rx, top / ry], row // 2).astype(np.float32)
        return cls((frame_height, frame_width), width, height, left, top, scale, offset)


class BlazeDetector:
    """A MediaPipe SSD detector on one frame at a time: `detect_rows(bgr)` gives (xmin, ymin, xmax, ymax,
    keypoints as x, y, ...) rows in frame pixels and their scores, best score first.

    Boxes are not clipped to the frame, so a face cut by the frame edge keeps its full size.
    """

    def __init__(
        self, model_path: Path, variant: str = "short", threads: int = 1, min_score: float | None = None
    ) -> None:
        if variant not in _VARIANTS:
            raise ValueError(f"unknown detector variant {variant!r}; expected one of {sorted(_VARIANTS)}")
        spec = self._spec = _VARIANTS[variant]
        self.variant = variant
        self.min_score = spec.min_score if min_score is None else float(min_score)
        if not 0.0 < self.min_score < 1.0:
            raise ValueError(f"min_score must be in (0, 1), got {self.min_score}")
        self._size = spec.input_size
        self._anchors = ssd_anchor_centres(spec.input_size, spec.strides, spec.anchors_per_layer)
        self._model = TFLiteModel(model_path, threads)
        self._regressor_out, self._score_out = self._check_model(len(self._anchors))
        # Padding is 0 in pixel terms, i.e. the bottom of the input range (as MediaPipe's letterbox gives).
        self._pad = 0.0 if spec.unit_range else -1.0
        self._input = np.full((1, self._size, self._size, 3), self._pad, dtype=np.float32)
        self._letterbox: _Letterbox | None = None

    def _check_model(self, num_anchors: int) -> tuple[int, int]:
        """Check the model fits the variant; return the output positions of regressors and scores."""
        return self._model.require(
            f"MediaPipe's {self.variant!r} detector",
            (1, self._size, self._size, 3),
            np.float32,
            ((1, num_anchors, self._spec.row), (1, num_anchors, 1)),
        )

    def detect_rows(self, image_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 BGR image, got {image_bgr.shape} {image_bgr.dtype}")
        letterbox = self._prepare_input(image_bgr)
        outputs = self._model.run(self._input)
        locs, scores = self._decode(outputs[self._regressor_out][0], outputs[self._score_out][0, :, 0])
        if not len(scores):
            return locs, scores
        locs, scores = weighted_nms(locs, scores, _NMS_IOU)
        return locs * letterbox.scale - letterbox.offset, scores

    def _prepare_input(self, image_bgr: np.ndarray) -> _Letterbox:
        """Letterbox the frame into the preallocated input as RGB / 127.5 - 1 (or RGB / 255 for the palm).

        Bilinear without antialiasing, as MediaPipe's own CPU path (warpAffine) does: INTER_AREA was
        10x slower here (0.4 ms vs 0.04 ms at 640x480) for no better recall on the test photos.
        """
        height, width = image_bgr.shape[:2]
        lb = self._letterbox
        if lb is None or lb.frame_size != (height, width):
            lb = self._letterbox = _Letterbox.fit(height, width, self._size, self._spec.row)
            self._input.fill(self._pad)  # the padding area changed with the frame size
        resized = cv2.resize(image_bgr, (lb.width, lb.height), interpolation=cv2.INTER_LINEAR)
        area = self._input[0, lb.top : lb.top + lb.height, lb.left : lb.left + lb.width]
        area[...] = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        if self._spec.unit_range:
            area *= 1.0 / 255.0
        else:
            area *= 1.0 / 127.5
            area -= 1.0
        return lb

    def _decode(self, raw: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows above min_score as (xmin, ymin, xmax, ymax, 6 x (x, y)) in [0, 1] input coordinates."""
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -_LOGIT_CLIP, _LOGIT_CLIP)))
        # Like MediaPipe, drop boxes the model predicts with a negative size.
        keep = np.flatnonzero((scores >= self.min_score) & (raw[:, 2] > 0) & (raw[:, 3] > 0))
        pairs = raw[keep].reshape(-1, self._spec.row // 2, 2) / self._size
        anchors = self._anchors[keep]
        centre, half = pairs[:, 0] + anchors, pairs[:, 1] / 2
        keypoints = (pairs[:, 2:] + anchors[:, None, :]).reshape(-1, 2 * self._spec.keypoints)
        locs = np.concatenate([centre - half, centre + half, keypoints], axis=1)
        return locs, scores[keep]


class FaceDetector(BlazeDetector):
    """BlazeFace: `detect(bgr) -> faces` in frame pixels, best score first."""

    def __init__(
        self, model_path: Path, variant: str = "short", threads: int = 1, min_score: float | None = None
    ) -> None:
        if variant not in FACE_VARIANTS:
            raise ValueError(f"unknown BlazeFace variant {variant!r}; expected one of {list(FACE_VARIANTS)}")
        super().__init__(model_path, variant, threads, min_score)

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        locs, scores = self.detect_rows(image_bgr)
        return [_to_face(row, score) for row, score in zip(locs, scores)]


class MergedFaceDetector:
    """Several BlazeFace models on the same frame, merged: of two faces that overlap at IoU > _NMS_IOU, or
    where one's centre lies in the other's box, the best scored stays. Short range finds a face filling the
    frame that full range misses; full range finds faces of 20-40 px across a room that short range misses
    (README, "Measured figures"). The centre test catches the short-range model's loose boxes around a
    small face, twice its size (IoU 0.26 with the full-range box of the same face, on a dlib group photo)."""

    def __init__(self, detectors: list[FaceDetector]) -> None:
        self._detectors = detectors

    def detect(self, image_bgr: np.ndarray) -> list[Face]:
        found = sorted((face for d in self._detectors for face in d.detect(image_bgr)), key=lambda f: -f.score)
        kept: list[Face] = []
        for face in found:
            if not any(_same_face(face.box, other.box) for other in kept):
                kept.append(face)
        return kept


def _same_face(a: Box, b: Box) -> bool:
    return a.iou(b) > _NMS_IOU or _centre_in(a, b) or _centre_in(b, a)


def _centre_in(a: Box, b: Box) -> bool:
    cx, cy = a.x + a.w / 2, a.y + a.h / 2
    return b.x <= cx <= b.x + b.w and b.y <= cy <= b.y + b.h


def _to_face(row: np.ndarray, score: float) -> Face:
    x1, y1, x2, y2, *points = row.tolist()
    keypoints = tuple(zip(points[0::2], points[1::2], strict=True))
    return Face(box=Box(x1, y1, x2 - x1, y2 - y1), score=float(score), keypoints=keypoints)
