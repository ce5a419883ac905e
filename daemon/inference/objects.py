"""COCO object detection (phones, books, laptops, people) behind one interface: YOLOX-nano or SSD-MobileNet-v1.

Both miss phones under about 40 px in a whole frame, so `CandidateCropDetector` also runs the model on a
crop around each candidate's face, where a held phone covers more of the model input, and merges the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from daemon.config import InferenceConfig
from daemon.inference.analysis import Box, DetectedObject, Face
from daemon.inference.runtime import TFLiteModel

# model name -> (model file, its label file: line i names class index i)
OBJECT_MODEL_FILES = {
    "yolox": ("yolox_nano_coco_fp16.tflite", "coco80_labels.txt"),
    "ssd": ("ssd_mobilenet_v1_coco_quant.tflite", "coco_labelmap.txt"),
}
_NMS_IOU = 0.45  # YOLOX's demo value, also used to merge the crop pass into the whole-frame pass


class ObjectDetector(Protocol):
    def detect(self, image_bgr: np.ndarray) -> list[DetectedObject]: ...


def _read_labels(path: Path, wanted: list[str]) -> tuple[int, dict[int, str]]:
    """(the number of class slots in the model's label file, class index -> name of the wanted classes)."""
    names = Path(path).read_text().splitlines()
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ValueError(f"{path}: no class named {', '.join(missing)}")
    return len(names), {index: name for index, name in enumerate(names) if name in wanted}


class YoloxDetector:
    """YOLOX-nano, 416x416 BGR 0..255 letterboxed at the top-left; decoding and NMS here.

    Each cell's class is the best of the wanted classes only (on the shared photos this finds exactly what
    taking the best of all 80 and then filtering finds, with fewer columns to scan)."""

    _SIDE = 416
    _STRIDES = (8, 16, 32)
    _PAD = 114.0

    def __init__(self, model_path: Path, labels_path: Path, classes: list[str], min_score: float, threads: int = 1):
        self._model = TFLiteModel(model_path, threads)
        num_classes, self._labels = _read_labels(labels_path, classes)
        grids = [(self._SIDE // s, s) for s in self._STRIDES]
        cells = sum(n * n for n, _ in grids)
        self._model.require(
            f"YOLOX at {self._SIDE}", (1, self._SIDE, self._SIDE, 3), np.float32, ((1, cells, 5 + num_classes),)
        )
        xy, stride = [], []
        for n, s in grids:
            ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            xy.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
            stride.append(np.full((n * n, 1), s))
        self._grid = np.concatenate(xy).astype(np.float32)
        self._stride = np.concatenate(stride).astype(np.float32)
        self._class_ids = np.array(sorted(self._labels))
        self._min_score = min_score
        self._input = np.full((1, self._SIDE, self._SIDE, 3), self._PAD, dtype=np.float32)
        self._filled: tuple[int, int] = (0, 0)  # size of the picture area written last time

    def detect(self, image_bgr: np.ndarray) -> list[DetectedObject]:
        height, width = image_bgr.shape[:2]
        ratio = min(self._SIDE / height, self._SIDE / width)
        w, h = max(1, int(width * ratio)), max(1, int(height * ratio))
        if self._filled != (w, h):
            self._input.fill(self._PAD)
            self._filled = (w, h)
        self._input[0, :h, :w] = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
        out = self._model.run(self._input)[0][0]
        # Score of a wanted class = objectness x class probability (both already sigmoid'ed).
        scores = out[:, 4:5] * out[:, 5 + self._class_ids]
        best = scores.argmax(axis=1)
        best_score = scores[np.arange(len(scores)), best]
        keep = np.flatnonzero(best_score >= self._min_score)
        if not keep.size:
            return []
        raw = out[keep]
        stride = self._stride[keep]
        centre = (raw[:, :2] + self._grid[keep]) * stride / ratio
        size = np.exp(raw[:, 2:4]) * stride / ratio
        boxes = np.concatenate([centre - size / 2, size], axis=1)
        labels = [self._labels[int(c)] for c in self._class_ids[best[keep]]]
        return _suppress(boxes, best_score[keep], labels, width, height)


class SsdDetector:
    """SSD-MobileNet-v1 (uint8, 300x300 RGB, whole frame stretched); decoding and NMS are in the graph."""

    _SIDE = 300

    def __init__(self, model_path: Path, labels_path: Path, classes: list[str], min_score: float, threads: int = 1):
        self._model = TFLiteModel(model_path, threads)
        _, self._labels = _read_labels(labels_path, classes)
        shapes = self._model.output_shapes
        if self._model.input_shape != (1, self._SIDE, self._SIDE, 3) or self._model.input_dtype != np.uint8:
            raise ValueError(f"{model_path}: input {self._model.input_shape} is not SSD's (1, 300, 300, 3) uint8")
        # TFLite_Detection_PostProcess emits boxes (1, N, 4), classes (1, N), scores (1, N), count (1,), in
        # that order; classes and scores share a shape, so the order tells them apart.
        n = shapes[0][1] if len(shapes) == 4 and len(shapes[0]) == 3 else 0
        if shapes != [(1, n, 4), (1, n), (1, n), (1,)]:
            raise ValueError(f"{model_path}: outputs {shapes} are not TFLite_Detection_PostProcess's")
        self._min_score = min_score

    def detect(self, image_bgr: np.ndarray) -> list[DetectedObject]:
        height, width = image_bgr.shape[:2]
        resized = cv2.resize(image_bgr, (self._SIDE, self._SIDE), interpolation=cv2.INTER_LINEAR)
        outputs = self._model.run(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)[None])
        boxes, classes, scores = (output[0] for output in outputs[:3])
        found = []
        for (y1, x1, y2, x2), class_id, score in zip(boxes, classes.astype(int), scores):
            label = self._labels.get(int(class_id))
            if label is None or score < self._min_score:
                continue
            x1, x2 = np.clip([x1 * width, x2 * width], 0, width)
            y1, y2 = np.clip([y1 * height, y2 * height], 0, height)
            found.append(DetectedObject(label, float(score), Box(float(x1), float(y1), float(x2 - x1), float(y2 - y1))))
        return found


def _suppress(boxes: np.ndarray, scores: np.ndarray, labels: list[str], width: int, height: int) -> list[DetectedObject]:
    """Per-class NMS on (x, y, w, h) boxes, then clip to the frame; best score first."""
    names = sorted(set(labels))
    class_ids = [names.index(label) for label in labels]
    kept = cv2.dnn.NMSBoxesBatched(boxes.tolist(), scores.tolist(), class_ids, 0.0, _NMS_IOU)
    found = []
    for i in sorted(np.asarray(kept, dtype=int).ravel(), key=lambda i: -scores[i]):
        x, y, w, h = boxes[i]
        x1, x2 = max(0.0, float(x)), min(float(width), float(x + w))
        y1, y2 = max(0.0, float(y)), min(float(height), float(y + h))
        if x2 > x1 and y2 > y1:
            found.append(DetectedObject(labels[i], float(scores[i]), Box(x1, y1, x2 - x1, y2 - y1)))
    return found


@dataclass(frozen=True, slots=True)
class _Crop:
    x: int
    y: int
    w: int
    h: int


class CandidateCropDetector:
    """The whole frame, then a crop around each candidate's face (head, hands at the ear, in front of the
    face and down to the desk), merged by per-class NMS. A crop is only worth its run where it zooms in:
    its long side must be at most 1/1.5 of the frame's. People found in a crop are dropped (a crop cuts
    them in pieces; the whole frame sees them better)."""

    # Around a face of size S: 1.75 S either side of its centre, from 0.75 S above it to 3.5 S below it.
    # Measured on images/phones/ (tests/test_inference_objects.py): with YOLOX at 0.3 this finds
    # 2/11 phones at IoU >= 0.5 (whole frame alone: 1/11) and adds no wrong phone box.
    _HALF_WIDTH, _ABOVE, _BELOW = 1.75, 0.75, 3.5
    _MIN_ZOOM = 1.5
    _MAX_CROPS = 2

    def __init__(self, detector: ObjectDetector, face_crops: bool = True):
        self._detector = detector
        self._max_crops = self._MAX_CROPS if face_crops else 0

    def detect(self, image_bgr: np.ndarray, faces: tuple[Face, ...] = ()) -> list[DetectedObject]:
        height, width = image_bgr.shape[:2]
        found = list(self._detector.detect(image_bgr))
        crops = self._crops(faces, width, height)
        for crop in crops:
            for obj in self._detector.detect(image_bgr[crop.y : crop.y + crop.h, crop.x : crop.x + crop.w]):
                if obj.label != "person":
                    b = obj.box
                    found.append(DetectedObject(obj.label, obj.score, Box(b.x + crop.x, b.y + crop.y, b.w, b.h)))
        if not crops or len(found) < 2:
            return found
        boxes = np.array([[o.box.x, o.box.y, o.box.w, o.box.h] for o in found], dtype=np.float32)
        scores = np.array([o.score for o in found], dtype=np.float32)
        return _suppress(boxes, scores, [o.label for o in found], width, height)

    def _crops(self, faces: tuple[Face, ...], width: int, height: int) -> list[_Crop]:
        crops = []
        for face in sorted(faces, key=lambda f: -f.box.w * f.box.h)[: self._max_crops]:
            size = max(face.box.w, face.box.h)
            centre = face.box.x + face.box.w / 2
            x1, x2 = max(0, int(centre - self._HALF_WIDTH * size)), min(width, int(centre + self._HALF_WIDTH * size))
            y1 = max(0, int(face.box.y - self._ABOVE * size))
            y2 = min(height, int(face.box.y + face.box.h + self._BELOW * size))
            if min(x2 - x1, y2 - y1) >= 16 and max(x2 - x1, y2 - y1) * self._MIN_ZOOM <= max(width, height):
                crops.append(_Crop(x1, y1, x2 - x1, y2 - y1))
        return crops


def load_object_detector(config: InferenceConfig, models_dir: Path) -> CandidateCropDetector | None:
    if config.object_model == "off":
        return None
    model_file, labels_file = OBJECT_MODEL_FILES[config.object_model]
    model = YoloxDetector if config.object_model == "yolox" else SsdDetector
    detector = model(
        models_dir / model_file, models_dir / labels_file, config.object_classes, config.object_min_score, config.threads
    )
    return CandidateCropDetector(detector, config.object_face_crops)
