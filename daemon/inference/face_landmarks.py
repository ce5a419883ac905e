"""The 468-point face mesh (MediaPipe face_landmark.tflite) on a rotated face crop."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.inference.analysis import Face
from daemon.inference.roi import Roi, cut_rgb, to_frame, to_unit_range
from daemon.inference.runtime import TFLiteModel

NUM_LANDMARKS = 468
_SIDE = 192
# MediaPipe's face_detection_front_detection_to_roi and face_landmark_landmarks_to_roi: 1.5 x the long side.
_ROI_SCALE = 1.5
_RIGHT_EYE_OUTER, _LEFT_EYE_OUTER = 33, 263  # the line that sets the crop's rotation while tracking


@dataclass(frozen=True, slots=True)
class Mesh:
    landmarks: np.ndarray  # (468, 3) float32, frame pixels
    presence: float  # probability that the crop holds a face


def roi_from_detection(face: Face) -> Roi:
    """The crop for a fresh detection: the box centre, 1.5 x its long side, the eyes level."""
    box = face.box
    corners = np.array([[box.x, box.y], [box.x + box.w, box.y + box.h]])
    right_eye, left_eye = np.array(face.keypoints[0]), np.array(face.keypoints[1])
    return Roi.around(corners, right_eye, left_eye, _ROI_SCALE)


def roi_from_landmarks(landmarks: np.ndarray) -> Roi:
    """The crop for the next frame of a tracked face, from this frame's mesh (the detector is skipped)."""
    points = landmarks[:, :2]
    return Roi.around(points, points[_RIGHT_EYE_OUTER], points[_LEFT_EYE_OUTER], _ROI_SCALE)


class FaceMeshModel:
    def __init__(self, model_path: Path, threads: int = 1) -> None:
        self._model = TFLiteModel(model_path, threads)
        # Decoded by shape: copies of this model name their outputs differently.
        self._points_out, self._flag_out = self._model.require(
            "a 468-point face mesh", (1, _SIDE, _SIDE, 3), np.float32, ((1, 1, 1, NUM_LANDMARKS * 3), (1, 1, 1, 1))
        )
        self._input = np.empty((1, _SIDE, _SIDE, 3), dtype=np.float32)

    def run(self, image_bgr: np.ndarray, roi: Roi) -> Mesh:
        crop_to_frame = roi.crop_to_frame(_SIDE)
        crop = cut_rgb(image_bgr, crop_to_frame, _SIDE)
        to_unit_range(crop, self._input[0])
        outputs = self._model.run(self._input)
        points = outputs[self._points_out].reshape(NUM_LANDMARKS, 3)
        logit = max(-80.0, min(80.0, float(outputs[self._flag_out].item())))
        return Mesh(to_frame(points, crop_to_frame), 1.0 / (1.0 + math.exp(-logit)))
