"""Object detection (phones, books, laptops, people) behind one interface: the bundled YOLOX-nano (COCO) or
SSD-MobileNet-v1 (COCO), or an exam centre's own model in one of three output layouts (`LAYOUTS`), as a
.tflite file on LiteRT or an .onnx file on OpenCV DNN.

The bundled models miss phones under about 40 px in a whole frame, so `CandidateCropDetector` also runs
the model zoomed in where phones are (tiles, around faces, around hands) and merges the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from daemon.config import InferenceConfig
from daemon.inference.analysis import Box, DetectedObject, Face
from daemon.inference.hands import PALM_FILE, HandDetector
from daemon.inference.runtime import OnnxModel, TFLiteModel

DetectorModel = TFLiteModel | OnnxModel

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
    """YOLOX layout: one (1, cells, 5 + classes) output of per-cell [dx, dy, log w, log h, objectness, class
    probabilities] (sigmoid'ed), no decoding or NMS in the graph; input BGR 0..255 letterboxed at the
    top-left (pad 114), any square side with strides 8, 16, 32 (416 for the bundled YOLOX-nano).

    Each cell's class is the best of the wanted classes only (on the shared photos this finds exactly what
    taking the best of all 80 and then filtering finds, with fewer columns to scan)."""

    _STRIDES = (8, 16, 32)
    _PAD = 114.0

    def __init__(self, model: DetectorModel, labels_path: Path, classes: list[str], min_score: float):
        self._model = model
        side = model.input_shape[1]
        num_classes, self._labels = _read_labels(labels_path, classes)
        grids = [(side // s, s) for s in self._STRIDES]
        cells = sum(n * n for n, _ in grids)
        model.require(f"YOLOX at {side}", (1, side, side, 3), np.float32, ((1, cells, 5 + num_classes),))
        xy, stride = [], []
        for n, s in grids:
            ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            xy.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
            stride.append(np.full((n * n, 1), s))
        self._grid = np.concatenate(xy).astype(np.float32)
        self._stride = np.concatenate(stride).astype(np.float32)
        self._class_ids = np.array(sorted(self._labels))
        self._min_score = min_score
        self._letterbox = _Letterbox(side, self._PAD, centred=False)

    def detect(self, image_bgr: np.ndarray) -> list[DetectedObject]:
        height, width = image_bgr.shape[:2]
        tensor, ratio, _ = self._letterbox.fill(image_bgr)
        out = self._model.run(tensor)[0][0]
        # Score of a wanted class = objectness x class probability (both already sigmoid'ed).
        scores = out[:, 4:5] * out[:, 5 + self._class_ids]
        keep, best, best_score = _best_wanted(scores, self._min_score)
        if not keep.size:
            return []
        raw = out[keep]
        stride = self._stride[keep]
        centre = (raw[:, :2] + self._grid[keep]) * stride / ratio
        size = np.exp(raw[:, 2:4]) * stride / ratio
        boxes = np.concatenate([centre - size / 2, size], axis=1)
        labels = [self._labels[int(c)] for c in self._class_ids[best]]
        return _suppress(boxes, best_score, labels, width, height)


class Yolov8Detector:
    """YOLOv8 layout (Ultralytics export, also YOLOv5u/v9/v11 heads): one output of (4 + classes) rows by
    boxes columns, or transposed, each box [cx, cy, w, h, class scores] (sigmoid'ed, no objectness), in
    input pixels (ONNX) or in [0, 1] (TFLite export); input RGB 0..1 letterboxed centred (pad 114)."""

    def __init__(self, model: DetectorModel, labels_path: Path, classes: list[str], min_score: float):
        self._model = model
        side = model.input_shape[1]
        num_classes, self._labels = _read_labels(labels_path, classes)
        model.require(f"YOLOv8 at {side}", (1, side, side, 3), np.float32, ())
        shape = model.output_shapes[0]
        if len(shape) != 3 or 4 + num_classes not in shape[1:]:
            raise ValueError(f"{model.path}: output {shape} does not fit YOLOv8 with {num_classes} classes")
        self._transposed = shape[1] == 4 + num_classes  # (1, 4 + classes, boxes), Ultralytics' own order
        self._side = side
        self._class_ids = np.array(sorted(self._labels))
        self._min_score = min_score
        self._letterbox = _Letterbox(side, 114.0, centred=True, rgb_unit=True)

    def detect(self, image_bgr: np.ndarray) -> list[DetectedObject]:
        height, width = image_bgr.shape[:2]
        tensor, ratio, (left, top) = self._letterbox.fill(image_bgr)
        out = self._model.run(tensor)[0][0]
        if self._transposed:
            out = out.T
        keep, best, best_score = _best_wanted(out[:, 4 + self._class_ids], self._min_score)
        if not keep.size:
            return []
        xywh = out[keep, :4].astype(np.float32)
        if xywh.max() <= 2.0:  # normalized boxes (the TFLite export): no box is twice the input
            xywh = xywh * self._side
        centre = (xywh[:, :2] - (left, top)) / ratio
        size = xywh[:, 2:4] / ratio
        boxes = np.concatenate([centre - size / 2, size], axis=1)
        labels = [self._labels[int(c)] for c in self._class_ids[best]]
        return _suppress(boxes, best_score, labels, width, height)


class SsdDetector:
    """SSD layout: TFLite_Detection_PostProcess's outputs, decoded and NMS'd in the graph; input RGB, the
    whole frame stretched to the input (uint8 0..255, or float scaled to [-1, 1] as the TF Object Detection
    API exports it). The bundled one is SSD-MobileNet-v1 (uint8, 300x300)."""

    def __init__(self, model: DetectorModel, labels_path: Path, classes: list[str], min_score: float):
        self._model = model
        _, self._labels = _read_labels(labels_path, classes)
        shapes = model.output_shapes
        shape = model.input_shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or model.input_dtype not in (np.uint8, np.float32):
            raise ValueError(f"{model.path}: input {shape} {model.input_dtype} is not an SSD's (1, H, W, 3)")
        self._size = (shape[2], shape[1])
        # TFLite_Detection_PostProcess emits boxes (1, N, 4), classes (1, N), scores (1, N), count (1,), in
        # that order; classes and scores share a shape, so the order tells them apart.
        n = shapes[0][1] if len(shapes) == 4 and len(shapes[0]) == 3 else 0
        if shapes != [(1, n, 4), (1, n), (1, n), (1,)]:
            raise ValueError(f"{model.path}: outputs {shapes} are not TFLite_Detection_PostProcess's")
        self._min_score = min_score

    def detect(self, image_bgr: np.ndarray) -> list[DetectedObject]:
        height, width = image_bgr.shape[:2]
        resized = cv2.resize(image_bgr, self._size, interpolation=cv2.INTER_LINEAR)
        tensor = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)[None]
        if self._model.input_dtype == np.float32:
            tensor = tensor.astype(np.float32) / 127.5 - 1.0
        outputs = self._model.run(tensor)
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


LAYOUTS = {"yolox": YoloxDetector, "yolov8": Yolov8Detector, "ssd": SsdDetector}


class _Letterbox:
    """A frame scaled to fit a square input, keeping its aspect, into a preallocated tensor."""

    def __init__(self, side: int, pad: float, centred: bool, rgb_unit: bool = False):
        self._side, self._pad, self._centred, self._rgb_unit = side, pad / 255 if rgb_unit else pad, centred, rgb_unit
        self._input = np.full((1, side, side, 3), self._pad, dtype=np.float32)
        self._filled: tuple[int, int] = (0, 0)  # size of the picture area written last time

    def fill(self, image_bgr: np.ndarray) -> tuple[np.ndarray, float, tuple[int, int]]:
        """(the input tensor, the scale from frame to input, the picture's (left, top) offset in it)."""
        height, width = image_bgr.shape[:2]
        ratio = min(self._side / height, self._side / width)
        w, h = max(1, int(width * ratio)), max(1, int(height * ratio))
        left, top = ((self._side - w) // 2, (self._side - h) // 2) if self._centred else (0, 0)
        if self._filled != (w, h):
            self._input.fill(self._pad)
            self._filled = (w, h)
        resized = cv2.resize(image_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
        area = self._input[0, top : top + h, left : left + w]
        if self._rgb_unit:
            np.multiply(cv2.cvtColor(resized, cv2.COLOR_BGR2RGB), np.float32(1 / 255), out=area, casting="unsafe")
        else:
            area[...] = resized
        return self._input, ratio, (left, top)


def _best_wanted(scores: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For (boxes, wanted classes) scores: the rows whose best wanted class reaches min_score, that class's
    column and its score."""
    best = scores.argmax(axis=1)
    best_score = scores[np.arange(len(scores)), best]
    keep = np.flatnonzero(best_score >= min_score)
    return keep, best[keep], best_score[keep]


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
    """One object pass: the whole frame, then zoomed-in regions where phones are, merged by per-class NMS.

    Regions: four overlapping tiles of the frame (a phone on the desk or held low), a crop around each of
    the two largest faces (head, hands at the ear, in front of the face and down to the desk) and a square
    around each hand the palm detector finds (a phone is held). A region is only worth its run where it
    zooms in: its long side must be at most 1/1.5 of the frame's. People found in a region are dropped (a
    region cuts them in pieces; the whole frame sees them better).

    Measured on images/phones/ (11 phones) and the 26 phone-free photos (bench/eval_stills.py): at a
    per-pass score of 0.25, whole frame 3/11 at IoU >= 0.3, + face crops 4/11, + hand squares 5/11,
    + tiles 7/11, each with 0 phone boxes on the phone-free photos.
    """

    # Around a face of size S: 1.75 S either side of its centre, from 0.75 S above it to 3.5 S below it.
    _HALF_WIDTH, _ABOVE, _BELOW = 1.75, 0.75, 3.5
    # A hand square is 3x the palm box: 3, 4, 5 and 6 were tried, 3 found one more phone than the others.
    _HAND_REACH = 3.0
    _TILE = 0.6  # each tile covers 60 % of the frame's width and height, so neighbours overlap by 20 %
    _MIN_ZOOM = 1.5
    _MAX_CROPS = 2

    def __init__(
        self, detector: ObjectDetector, face_crops: bool = True, hands: HandDetector | None = None, tiles: bool = False
    ):
        self._detector = detector
        self._max_crops = self._MAX_CROPS if face_crops else 0
        self._hands = hands
        self._tiles = tiles

    def detect(self, image_bgr: np.ndarray, faces: tuple[Face, ...] = ()) -> list[DetectedObject]:
        height, width = image_bgr.shape[:2]
        found = list(self._detector.detect(image_bgr))
        regions = self._regions(image_bgr, faces)
        for crop in regions:
            for obj in self._detector.detect(image_bgr[crop.y : crop.y + crop.h, crop.x : crop.x + crop.w]):
                if obj.label != "person":
                    b = obj.box
                    found.append(DetectedObject(obj.label, obj.score, Box(b.x + crop.x, b.y + crop.y, b.w, b.h)))
        if not regions or len(found) < 2:
            return found
        boxes = np.array([[o.box.x, o.box.y, o.box.w, o.box.h] for o in found], dtype=np.float32)
        scores = np.array([o.score for o in found], dtype=np.float32)
        return _suppress(boxes, scores, [o.label for o in found], width, height)

    def _regions(self, image_bgr: np.ndarray, faces: tuple[Face, ...]) -> list[_Crop]:
        height, width = image_bgr.shape[:2]
        wanted: list[tuple[float, float, float, float]] = []
        if self._tiles:
            step_x, step_y = (1 - self._TILE) * width, (1 - self._TILE) * height
            wanted += [
                (i * step_x, j * step_y, i * step_x + self._TILE * width, j * step_y + self._TILE * height)
                for j in (0, 1)
                for i in (0, 1)
            ]
        for face in sorted(faces, key=lambda f: -f.box.w * f.box.h)[: self._max_crops]:
            size = max(face.box.w, face.box.h)
            centre = face.box.x + face.box.w / 2
            wanted.append((
                centre - self._HALF_WIDTH * size,
                face.box.y - self._ABOVE * size,
                centre + self._HALF_WIDTH * size,
                face.box.y + face.box.h + self._BELOW * size,
            ))
        if self._hands is not None:
            wanted += [hand.reach(self._HAND_REACH) for hand in self._hands.detect(image_bgr)]
        crops = []
        for x1, y1, x2, y2 in wanted:
            x1, y1, x2, y2 = max(0, int(x1)), max(0, int(y1)), min(width, int(x2)), min(height, int(y2))
            if min(x2 - x1, y2 - y1) >= 16 and max(x2 - x1, y2 - y1) * self._MIN_ZOOM <= max(width, height):
                crops.append(_Crop(x1, y1, x2 - x1, y2 - y1))
        return crops


def object_model_files(config: InferenceConfig) -> list[str]:
    """The files of the models directory the object pass uses (a custom model's own files are not pinned)."""
    if config.object_model == "off":
        return []
    files = [] if config.object_model == "custom" else list(OBJECT_MODEL_FILES[config.object_model])
    return files + ([PALM_FILE] if config.object_hand_crops else [])


def load_model(path: Path, threads: int, onnx_side: int | None) -> DetectorModel:
    """A .tflite file runs on LiteRT, an .onnx file on OpenCV DNN (which needs the input side)."""
    if path.suffix.lower() != ".onnx":
        return TFLiteModel(path, threads)
    if onnx_side is None:
        raise ValueError(f"{path}: an ONNX model needs inference.object_input_size (its square input side)")
    return OnnxModel(path, onnx_side)


def load_object_detector(config: InferenceConfig, models_dir: Path) -> CandidateCropDetector | None:
    if config.object_model == "off":
        return None
    if config.object_model == "custom":
        model_path, labels_path = models_dir / config.object_model_file, models_dir / config.object_labels_file
        layout = config.object_model_layout
    else:
        model_file, labels_file = OBJECT_MODEL_FILES[config.object_model]
        model_path, labels_path, layout = models_dir / model_file, models_dir / labels_file, config.object_model
    model = load_model(model_path, config.threads, config.object_input_size)
    detector = LAYOUTS[layout](model, labels_path, config.object_classes, config.object_min_score)
    hands = HandDetector(models_dir / PALM_FILE, config.threads) if config.object_hand_crops else None
    return CandidateCropDetector(detector, config.object_face_crops, hands, config.object_tiles)
