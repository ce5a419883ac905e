"""Faces per frame: detect or track, then mesh, irises, head pose, gaze and eye/mouth openness.

Tracking works as in MediaPipe's face mesh: once a face has landmarks, the next frame's crop comes from
them and the detector is skipped. The detector still runs every `detect_interval_s` of frame time (so a
face entering the view is found within that time) and whenever no face is tracked. A tracked face is lost
when the mesh's face-presence score drops below `landmark_min_score`, when two detector runs in a row do
not see it, or when a detector run shows it to be a second crop on a face another track holds better.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from daemon.config import CLOSED_EYE_OPENNESS, InferenceConfig
from daemon.inference import face_geometry
from daemon.inference.analysis import Box, Face
from daemon.inference.face_detector import FaceDetector, MergedFaceDetector
from daemon.inference.face_landmarks import FaceMeshModel, Mesh, roi_from_detection, roi_from_landmarks
from daemon.inference.iris import EyeReading, IrisModel, eye_crops, place
from daemon.inference.roi import Roi

FACE_DETECTOR_FILES = {"short": "face_detection_short_range.tflite", "full": "face_detection_full_range.tflite"}
# face_model -> the BlazeFace variants it runs
FACE_MODEL_VARIANTS = {"short": ("short",), "full": ("full",), "both": ("short", "full")}
FACE_MESH_FILE = "face_landmark.tflite"
IRIS_FILE = "iris_landmark.tflite"
# Two meshes this similar are one face seen twice (two crops drifted onto it); for a mesh the last detector
# run did not confirm, less overlap is enough (measured on the scenario video's cuts between one and two
# faces: stale crops half on the new face overlap it at IoU 0.3, faces side by side under 0.1).
_SAME_FACE_IOU = 0.5
_STALE_FACE_IOU = 0.25
# A tracked face the detector does not see this many runs in a row is dropped: the mesh alone scores a crop
# that straddles two faces as a face (measured on the scenario video's switch from one face to two).
_MAX_MISSES = 2
# Mesh points standing in for BlazeFace's keypoints when the detector was skipped.
_NOSE_TIP, _UPPER_INNER_LIP, _LOWER_INNER_LIP, _RIGHT_TRAGION, _LEFT_TRAGION = 1, 13, 14, 234, 454


@dataclass(frozen=True, slots=True)
class FaceResult:
    faces: tuple[Face, ...]
    timings_ms: dict[str, float]


@dataclass(frozen=True, slots=True)
class _Track:
    roi: Roi  # where to look on the next frame
    box: Box | None = None  # the face's box on the last frame; None for a fresh detection
    misses: int = 0  # detector runs in a row that did not see this face
    readings: tuple[EyeReading, EyeReading] | None = None  # the last iris reading of each eye
    next_eye: int = 0  # the eye to read next when they take turns


class FacePipeline:
    def __init__(self, config: InferenceConfig, models_dir: Path) -> None:
        self._detector = MergedFaceDetector([
            FaceDetector(models_dir / FACE_DETECTOR_FILES[variant], variant, config.threads, config.face_min_score)
            for variant in FACE_MODEL_VARIANTS[config.face_model]
        ])
        self._mesh = FaceMeshModel(models_dir / FACE_MESH_FILE, config.threads)
        self._iris = IrisModel(models_dir / IRIS_FILE, config.threads)
        self._max_faces = config.max_faces
        self._detect_interval = config.detect_interval_s
        self._min_presence = config.landmark_min_score
        self._alternate_eyes = config.iris_alternate_eyes
        self._hfov = config.camera_hfov_deg
        self._intrinsics = None if config.camera_intrinsics is None else tuple(config.camera_intrinsics)
        self._camera: tuple[tuple[int, int], np.ndarray] | None = None
        self._tracked: list[_Track] = []
        self._last_detection: float | None = None

    def process(self, image_bgr: np.ndarray, mono: float) -> FaceResult:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        tracks = list(self._tracked)
        extra: list[Face] = []  # detected beyond max_faces: counted, but without landmarks
        if self._detection_due(mono):
            detections = self._detector.detect(image_bgr)
            self._last_detection = mono
            timings["face_detect"] = _ms_since(started)
            tracks = _confirm(tracks, detections)
            for face in detections:
                if any(_centre_inside(face.box, track.box) for track in self._tracked):
                    continue  # already tracked: the landmarks place it better than the detector
                if len(tracks) < self._max_faces:
                    tracks.append(_Track(roi_from_detection(face)))
                else:
                    extra.append(face)
        mark = time.perf_counter()
        meshes = [(self._mesh.run(image_bgr, track.roi), track) for track in tracks]
        kept = _distinct([(mesh, track) for mesh, track in meshes if mesh.presence >= self._min_presence])
        timings["face_landmarks"] = _ms_since(mark)
        faces, self._tracked = self._describe(image_bgr, kept, timings)
        timings["face_total"] = _ms_since(started)
        return FaceResult(tuple(faces + extra), timings)

    def _detection_due(self, mono: float) -> bool:
        last = self._last_detection
        # mono going back means a new timeline (a looped or reopened file).
        return not self._tracked or last is None or mono < last or mono - last >= self._detect_interval

    def _describe(
        self, image_bgr: np.ndarray, meshes: list[tuple[Mesh, _Track, Box]], timings: dict[str, float]
    ) -> tuple[list[Face], list[_Track]]:
        iris_ms = geometry_ms = 0.0
        faces, tracks = [], []
        camera = self._camera_matrix(image_bgr.shape[1], image_bgr.shape[0])
        for mesh, track, box in meshes:
            landmarks = mesh.landmarks
            mark = time.perf_counter()
            readings = list(track.readings or (None, None))
            # Taking turns halves the iris cost; the other eye's last reading moves with its eye corners.
            crops = eye_crops(landmarks)
            for eye in (track.next_eye,) if self._alternate_eyes and track.readings else (0, 1):
                readings[eye] = self._iris.read(image_bgr, crops, eye)
            eyes = place((readings[0], readings[1]), crops)
            iris_ms += _ms_since(mark)
            mark = time.perf_counter()
            pose = face_geometry.head_pose(landmarks, camera)
            openness = face_geometry.eye_openness(eyes)
            # A closed eye's iris position means nothing.
            open_eyes = [eye for eye, ratio in enumerate(openness) if ratio >= CLOSED_EYE_OPENNESS]
            gaze = face_geometry.gaze(eyes, pose, open_eyes) if pose is not None and open_eyes else None
            keypoints = (
                tuple(eyes.iris[0, 0, :2].tolist()),
                tuple(eyes.iris[1, 0, :2].tolist()),
                tuple(landmarks[_NOSE_TIP, :2].tolist()),
                tuple(((landmarks[_UPPER_INNER_LIP, :2] + landmarks[_LOWER_INNER_LIP, :2]) / 2).tolist()),
                tuple(landmarks[_RIGHT_TRAGION, :2].tolist()),
                tuple(landmarks[_LEFT_TRAGION, :2].tolist()),
            )
            face = Face(
                box=box,
                score=mesh.presence,
                keypoints=keypoints,
                landmarks=landmarks,
                pose=pose,
                gaze=gaze,
                eye_openness=sum(openness) / 2,
                mouth_openness=face_geometry.mouth_openness(landmarks),
                iris=eyes.iris,
            )
            faces.append(face)
            roi = roi_from_landmarks(landmarks)
            tracks.append(_Track(roi, box, track.misses, (readings[0], readings[1]), 1 - track.next_eye))
            geometry_ms += _ms_since(mark)
        if meshes:
            timings["iris"] = iris_ms
            timings["face_geometry"] = geometry_ms
        return faces, tracks

    def _camera_matrix(self, width: int, height: int) -> np.ndarray:
        if self._camera is None or self._camera[0] != (width, height):
            self._camera = (width, height), face_geometry.camera_matrix(width, height, self._hfov, self._intrinsics)
        return self._camera[1]


def _confirm(tracks: list[_Track], detections: list[Face]) -> list[_Track]:
    """Match detections to tracks one to one (a detection's centre inside the track's box; of several
    such tracks, the one whose box fits it best). A track that lost its detection to a better one is a
    second crop on that face and goes now; one no detection falls in goes after _MAX_MISSES runs."""
    confirmed: set[int] = set()
    duplicates: set[int] = set()
    for face in detections:
        owners = [i for i, track in enumerate(tracks) if _centre_inside(face.box, track.box)]
        if owners:
            best = max(owners, key=lambda i: face.box.iou(tracks[i].box))
            confirmed.add(best)
            duplicates.update(owners)
    kept = []
    for i, track in enumerate(tracks):
        if i in confirmed:
            kept.append(replace(track, misses=0))
        elif i not in duplicates and track.misses + 1 < _MAX_MISSES:
            kept.append(replace(track, misses=track.misses + 1))
    return kept


def _distinct(meshes: list[tuple[Mesh, _Track]]) -> list[tuple[Mesh, _Track, Box]]:
    """One mesh per face, with its box. Of two meshes on one face (two crops drifted onto it) the one the
    detector last confirmed wins, then the surer one; a mesh the last detector run did not confirm
    already gives way at a smaller overlap (it is most likely a stale crop half on that face)."""
    kept: list[tuple[Mesh, _Track, Box]] = []
    for mesh, track in sorted(meshes, key=lambda item: (item[1].misses > 0, -item[0].presence)):
        box = _bounding_box(mesh.landmarks)
        limit = _SAME_FACE_IOU if track.misses == 0 else _STALE_FACE_IOU
        if all(box.iou(other) <= limit for _, _, other in kept):
            kept.append((mesh, track, box))
    return kept


def _bounding_box(landmarks: np.ndarray) -> Box:
    low, high = landmarks[:, :2].min(axis=0), landmarks[:, :2].max(axis=0)
    return Box(float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))


def _centre_inside(box: Box, other: Box | None) -> bool:
    if other is None:
        return False
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    return other.x <= cx <= other.x + other.w and other.y <= cy <= other.y + other.h


def _ms_since(mark: float) -> float:
    return (time.perf_counter() - mark) * 1000
