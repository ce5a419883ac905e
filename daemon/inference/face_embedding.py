"""Face embeddings for identity checks: an aligned face crop in, an L2-normalised vector out.

The crop is aligned from the 468-point mesh (five points: the two eye centres, the nose tip and the mouth
corners) onto the ArcFace 112-px template scaled to the model's input, by a similarity transform, as
shared/models/MANIFEST.md measured for the bundled model (faceres_float16.tflite, 1024-d). Any model with
the same interface (one square NHWC float32 input, one (1, d) output) can replace it; `input_format` says
how it wants its pixels.

Only a face seen big and frontal enough gives a fair comparison (`FaceView`): the distance between the eye
centres in frame pixels and the head's yaw, both measured on the frame path from what it has already.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from daemon.config import IdentityConfig
from daemon.inference.analysis import Face, IdentitySample, largest_face
from daemon.inference.face_landmarks import FaceMeshModel, roi_from_landmarks
from daemon.inference.runtime import TFLiteModel

BUNDLED_EMBEDDING_MODEL = IdentityConfig.model_fields["model_file"].default  # pinned in models/manifest.toml
# Mesh points averaged into each eye's centre (image-left eye, then image-right eye), then the nose tip
# and the two mouth corners: the five points of the ArcFace template, in its order.
_LEFT_EYE = [33, 133, 159, 145, 160, 144, 158, 153]
_RIGHT_EYE = [362, 263, 386, 374, 385, 380, 387, 373]
_NOSE_TIP, _MOUTH_LEFT, _MOUTH_RIGHT = 1, 61, 291
# ArcFace's 112-px template (insightface), in the same point order.
_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
# "bgr_mean": BGR minus the ImageNet channel means, not scaled (the bundled model, VGGFace2-trained);
# "rgb_signed": RGB scaled to [-1, 1] (ArcFace and MobileFaceNet exports).
INPUT_FORMATS = ("bgr_mean", "rgb_signed")
_BGR_MEANS = np.array([103.939, 116.779, 123.68], dtype=np.float32)


@dataclass(frozen=True, slots=True)
class FaceView:
    """How fairly a face can be compared: big enough (eye distance) and frontal enough (yaw)."""

    eye_distance_px: float
    yaw_deg: float | None  # None when the head pose was not measured

    def judgeable(self, min_eye_distance_px: float, max_yaw_deg: float) -> bool:
        return (
            self.eye_distance_px >= min_eye_distance_px
            and self.yaw_deg is not None
            and abs(self.yaw_deg) <= max_yaw_deg
        )


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The template's five points from a (468, 3) mesh, in frame pixels, (5, 2) float32."""
    points = landmarks[:, :2]
    return np.stack([
        points[_LEFT_EYE].mean(axis=0), points[_RIGHT_EYE].mean(axis=0),
        points[_NOSE_TIP], points[_MOUTH_LEFT], points[_MOUTH_RIGHT],
    ]).astype(np.float32)


def face_view(face: Face) -> FaceView | None:
    """The view of a face with landmarks (None without: a face beyond inference.max_faces)."""
    if face.landmarks is None:
        return None
    points = five_points(face.landmarks)
    distance = float(np.linalg.norm(points[1] - points[0]))
    return FaceView(distance, None if face.pose is None else face.pose.yaw)


def aligned_crop(image_bgr: np.ndarray, landmarks: np.ndarray, side: int) -> np.ndarray | None:
    """The side x side BGR crop, the mesh's five points brought onto the template (bilinear, black border);
    None when no similarity transform fits them (degenerate points)."""
    template = _TEMPLATE_112 * (side / 112)
    matrix, _ = cv2.estimateAffinePartial2D(five_points(landmarks), template, method=cv2.LMEDS)
    if matrix is None:
        return None
    return cv2.warpAffine(image_bgr, matrix, (side, side), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


class FaceEmbedder:
    """One embedding model: `embed(image, landmarks)` gives the face's unit vector."""

    def __init__(self, model_path: Path, input_format: str = "bgr_mean", threads: int = 1) -> None:
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format {input_format!r}: use one of {', '.join(INPUT_FORMATS)}")
        self._model = TFLiteModel(model_path, threads)
        shape = self._model.input_shape
        if len(shape) != 4 or shape[0] != 1 or shape[1] != shape[2] or shape[3] != 3:
            raise ValueError(f"{model_path}: input {shape} is not one square NHWC picture (1, side, side, 3)")
        self.side = shape[1]
        outputs = [s for s in self._model.output_shapes if len(s) == 2 and s[0] == 1]
        if len(outputs) != 1:
            raise ValueError(f"{model_path}: outputs {self._model.output_shapes} are not one (1, d) vector")
        self.dimensions = outputs[0][1]
        self._model.require("a face embedding model", shape, np.float32, (outputs[0],))
        self._output = self._model.output_shapes.index(outputs[0])
        self._input_format = input_format
        self.model_name = Path(model_path).name

    def crop(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
        return aligned_crop(image_bgr, landmarks, self.side)

    def embed_crop(self, crop_bgr: np.ndarray) -> np.ndarray:
        """The unit vector of an aligned crop (float32, `dimensions` long)."""
        if self._input_format == "bgr_mean":
            tensor = crop_bgr.astype(np.float32) - _BGR_MEANS
        else:
            tensor = cv2.cvtColor(crop_bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 127.5 - 1.0
        vector = self._model.run(tensor[None])[self._output][0].astype(np.float32)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 and math.isfinite(norm) else vector

    def embed(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
        crop = self.crop(image_bgr, landmarks)
        return None if crop is None else self.embed_crop(crop)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two unit vectors."""
    return float(np.dot(a, b))


# Mesh passes on the embedded frame, each on a crop centred by the one before. capture4 analysed at 4 fps (every
# 6th frame), same man against his check-in, lowest of 60: 0.43 with the frame path's landmarks, 0.62 after one
# pass, 0.74 after two (every frame analysed: 0.80). A pass costs about 1.4 ms.
_REFINE_PASSES = 2


class CandidateEmbedding:
    """The identity stage's work: the candidate's embedding, on a face that can be judged.

    `wanted(faces)` is the frame path's cheap check: the candidate is big and frontal enough (the view from
    the landmarks and pose it already has). Calling the object runs off the frame path: the mesh once more on
    that frame, on a crop centred on the candidate's landmarks (the frame path's mesh ran on a crop placed by
    the previous frame's, which lags a moving head, the more so when a loaded machine drops frames; its
    looser points misalign the crop), then the alignment and the embedding model. It gives an IdentitySample, or None when the candidate cannot be
    judged on that frame after all."""

    def __init__(self, embedder: FaceEmbedder, mesh: FaceMeshModel, min_eye_distance_px: float, max_yaw_deg: float,
                 min_presence: float):
        self.embedder = embedder
        self._mesh = mesh  # its own: the frame path's interpreter is not shared across threads
        self._limits = (min_eye_distance_px, max_yaw_deg)
        self._min_presence = min_presence

    def wanted(self, faces: tuple[Face, ...]) -> bool:
        return self._judgeable(largest_face(faces)) is not None

    def __call__(self, image_bgr: np.ndarray, faces: tuple[Face, ...]) -> IdentitySample | None:
        face = largest_face(faces)
        if self._judgeable(face) is None:
            return None
        landmarks = face.landmarks
        for _ in range(_REFINE_PASSES):
            mesh = self._mesh.run(image_bgr, roi_from_landmarks(landmarks))
            if mesh.presence < self._min_presence:
                return None
            landmarks = mesh.landmarks
        refined = replace(face, landmarks=landmarks)
        view = self._judgeable(refined)
        crop = None if view is None else self.embedder.crop(image_bgr, refined.landmarks)
        if crop is None:
            return None
        return IdentitySample(self.embedder.embed_crop(crop), view.eye_distance_px, view.yaw_deg, crop)

    def judgeable(self, face: Face) -> bool:
        """Big and frontal enough to compare."""
        return self._judgeable(face) is not None

    def _judgeable(self, face: Face | None) -> FaceView | None:
        view = None if face is None else face_view(face)
        return view if view is not None and view.judgeable(*self._limits) else None
