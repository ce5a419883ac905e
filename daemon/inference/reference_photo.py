"""A reference photo given at a session's start (the web start form's upload, MQTT start_session's
`reference_photo`): checked, then embedded as the session's identity reference instead of the check-in's.

Refused with the reason, before the session starts: anything but a JPEG or PNG, more than
MAX_REFERENCE_PHOTO_BYTES or MAX_SIDE pixels a side (read from the header, before decoding), no face, more
than one face, or a face too small or too turned to judge (the identity stage's own limits).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from daemon.config import IdentityConfig, InferenceConfig
from daemon.events.identity import PHOTO, IdentityReference
from daemon.inference.analysis import Face
from daemon.inference.analyzer import load_identity_stage
from daemon.inference.face_embedding import face_view
from daemon.inference.face_pipeline import FacePipeline

# A passport-style photo or a webcam still: a 640x480 JPEG is 30-80 kB.
MAX_REFERENCE_PHOTO_BYTES = 256 * 1024
MAX_SIDE = 4096
_FORMATS = {"JPEG", "PNG"}


class ReferencePhotoError(ValueError):
    """Why a reference photo is refused, in words for the person who gave it."""


class ReferencePhotos:
    """Turns a photo into an IdentityReference. Thread-safe: each photo gets its own face pipeline and model
    (a start is rare; the frame path's models are never shared with the web or MQTT thread)."""

    def __init__(self, inference: InferenceConfig, identity: IdentityConfig, models_dir: Path):
        self._inference = inference.model_copy(update={"max_faces": 4})
        self._identity = identity
        self._models = models_dir

    def read(self, data: bytes, at: float) -> IdentityReference:
        image = _decoded(data)
        faces = [f for f in FacePipeline(self._inference, self._models).process(image, 0.0).faces
                 if f.landmarks is not None]
        face = _the_one_face(faces)
        self._check_view(face)
        stage = load_identity_stage(self._identity, self._models, self._inference)
        crop = stage.embedder.crop(image, face.landmarks)
        if crop is None:
            raise ReferencePhotoError("the face's landmarks could not be aligned")
        return IdentityReference(stage.embedder.embed_crop(crop), PHOTO, 1, at, crop)

    def _check_view(self, face: Face) -> None:
        view = face_view(face)
        limits = self._identity
        if view is None or view.eye_distance_px < limits.min_eye_distance_px:
            distance = 0.0 if view is None else view.eye_distance_px
            raise ReferencePhotoError(
                f"the face is too small: its eyes are {distance:.0f} px apart, at least "
                f"{limits.min_eye_distance_px:g} px are needed"
            )
        if view.yaw_deg is None or abs(view.yaw_deg) > limits.max_yaw_deg:
            turned = "not measured" if view.yaw_deg is None else f"{abs(view.yaw_deg):.0f} deg"
            raise ReferencePhotoError(
                f"the face is turned away from the camera ({turned}; at most {limits.max_yaw_deg:g} deg)"
            )


def _decoded(data: bytes) -> np.ndarray:
    if len(data) > MAX_REFERENCE_PHOTO_BYTES:
        raise ReferencePhotoError(f"the photo is {len(data)} bytes; at most {MAX_REFERENCE_PHOTO_BYTES} are accepted")
    try:
        with Image.open(io.BytesIO(data)) as header:  # reads the header only: size and format, no pixels yet
            kind, (width, height) = header.format, header.size
    except (UnidentifiedImageError, OSError) as exc:
        raise ReferencePhotoError("not a picture (a JPEG or PNG is needed)") from exc
    if kind not in _FORMATS:
        raise ReferencePhotoError(f"a {kind} picture; a JPEG or PNG is needed")
    if max(width, height) > MAX_SIDE:
        raise ReferencePhotoError(f"the photo is {width}x{height}; at most {MAX_SIDE} px a side")
    try:  # Pillow refuses a truncated file; OpenCV before 5 decodes one into grey rows without a word
        with Image.open(io.BytesIO(data)) as whole:
            whole.load()
    except OSError as exc:
        raise ReferencePhotoError(f"the {kind} file is damaged and cannot be decoded") from exc
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ReferencePhotoError(f"the {kind} file is damaged and cannot be decoded")
    return image


def _the_one_face(faces: list[Face]) -> Face:
    if not faces:
        raise ReferencePhotoError("no face was found in the photo")
    if len(faces) > 1:
        raise ReferencePhotoError(f"{len(faces)} faces were found: the photo must show the candidate alone")
    return faces[0]
