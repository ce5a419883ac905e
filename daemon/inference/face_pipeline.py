"""Faces per frame: detect or track, then mesh, irises, head pose, gaze and eye/mouth openness.

Tracking works as in MediaPipe's face mesh: once a face has landmarks, the next frame's crop comes from
them and the detector is skipped. The detector still runs every `detect_interval_s` of frame time (so a
face entering the view is found within that time) and whenever no face is tracked. A tracked face is lost
when the mesh's face-presence score drops below `landmark_min_score`, or when two detector runs in a row
do not see it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.config import InferenceConfig
from daemon.inference import face_geometry
from daemon.inference.analysis import Box, Face
from daemon.inference.face_detector import FaceDetector
from daemon.inference.face_landmarks import FaceMeshModel, Mesh, roi_from_detection, roi_from_landmarks
from daemon.inference.iris import IrisModel
from daemon.inference.roi import Roi

FACE_DETECTOR_FILES = {"short": "face_detection_short_range.tflite", "full": "face_detection_full_range.tflite"}
FACE_MESH_FILE = "face_landmark.tflite"
IRIS_FILE = "iris_landmark.tflite"
# Two meshes this similar are one face seen twice (two crops drifted onto it).
_SAME_FACE_IOU = 0.5
# A tracked face the detector does not see this many runs in a row is dropped: the mesh alone scores a crop
# that straddles two faces as a face (measured on the scenario video's switch from one face to two).
_MAX_MISSES = 2
# An eye whose lid gap is under this share of its width is closed: its iris position means nothing.
_CLOSED_EYE = 0.1
# Mesh points standing in for BlazeFace's keypoints when the detector was skipped.
_NOSE_TIP, _UPPER_INNER_LIP, _LOWER_INNER_LIP, _RIGHT_TRAGION, _LEFT_TRAGION = 1, 13, 14, 234, 454


@dataclass(frozen=True, slots=True)
class FaceResult:
    faces: tuple[Face, ...]
    timings_ms: dict[str, float]


@dataclass(frozen=True, slots=True)
class _Tracked:
    roi: Roi  # where to look on the next frame
    box: Box  # the face's box on this frame
    misses: int  # detector runs in a row that did not see this face


class FacePipeline:
    def __init__(self, config: InferenceConfig, models_dir: Path) -> None:
        self._detector = FaceDetector(
            models_dir / FACE_DETECTOR_FILES[config.face_model],
            variant=config.face_model,
            threads=config.threads,
            min_score=config.face_min_score,
        )
        self._mesh = FaceMeshModel(models_dir / FACE_MESH_FILE, config.threads)
        self._iris = IrisModel(models_dir / IRIS_FILE, config.threads)
        self._max_faces = config.max_faces
        self._detect_interval = config.detect_interval_s
        self._min_presence = config.landmark_min_score
        self._hfov = config.camera_hfov_deg
        self._intrinsics = None if config.camera_intrinsics is None else tuple(config.camera_intrinsics)
        self._camera: tuple[tuple[int, int], np.ndarray] | None = None
        self._tracked: list[_Tracked] = []
        self._last_detection: float | None = None

    def process(self, image_bgr: np.ndarray, mono: float) -> FaceResult:
        timings: dict[str, float] = {}
        started = time.perf_counter()
        candidates = [(track.roi, track.misses) for track in self._tracked]
        extra: list[Face] = []  # detected beyond max_faces: counted, but without landmarks
        if self._detection_due(mono):
            detections = self._detector.detect(image_bgr)
            self._last_detection = mono
            timings["face_detect"] = _ms_since(started)
            candidates = [
                (track.roi, 0 if any(_centre_inside(d.box, track.box) for d in detections) else track.misses + 1)
                for track in self._tracked
            ]
            candidates = [(roi, misses) for roi, misses in candidates if misses < _MAX_MISSES]
            for face in detections:
                if any(_centre_inside(face.box, track.box) for track in self._tracked):
                    continue  # already tracked: the landmarks place it better than the detector
                if len(candidates) < self._max_faces:
                    candidates.append((roi_from_detection(face), 0))
                else:
                    extra.append(face)
        mark = time.perf_counter()
        meshes = [(self._mesh.run(image_bgr, roi), misses) for roi, misses in candidates]
        kept = self._distinct([(mesh, misses) for mesh, misses in meshes if mesh.presence >= self._min_presence])
        timings["face_landmarks"] = _ms_since(mark)
        faces = self._describe(image_bgr, [mesh for mesh, _ in kept], timings)
        self._tracked = [
            _Tracked(roi_from_landmarks(mesh.landmarks), face.box, misses) for (mesh, misses), face in zip(kept, faces)
        ]
        timings["face_total"] = _ms_since(started)
        return FaceResult(tuple(faces + extra), timings)

    def _detection_due(self, mono: float) -> bool:
        last = self._last_detection
        # mono going back means a new timeline (a looped or reopened file).
        return not self._tracked or last is None or mono < last or mono - last >= self._detect_interval

    @staticmethod
    def _distinct(meshes: list[tuple[Mesh, int]]) -> list[tuple[Mesh, int]]:
        kept: list[tuple[Mesh, int, Box]] = []
        for mesh, misses in sorted(meshes, key=lambda item: -item[0].presence):
            box = _bounding_box(mesh.landmarks)
            if all(box.iou(other) <= _SAME_FACE_IOU for _, _, other in kept):
                kept.append((mesh, misses, box))
        return [(mesh, misses) for mesh, misses, _ in kept]

    def _describe(self, image_bgr: np.ndarray, meshes: list[Mesh], timings: dict[str, float]) -> list[Face]:
        iris_ms = geometry_ms = 0.0
        faces = []
        camera = self._camera_matrix(image_bgr.shape[1], image_bgr.shape[0])
        for mesh in meshes:
            mark = time.perf_counter()
            eyes = self._iris.run(image_bgr, mesh.landmarks)
            iris_ms += _ms_since(mark)
            mark = time.perf_counter()
            landmarks = mesh.landmarks
            pose = face_geometry.head_pose(landmarks, camera)
            openness = face_geometry.eye_openness(eyes)
            open_eyes = [eye for eye, ratio in enumerate(openness) if ratio >= _CLOSED_EYE]
            gaze = face_geometry.gaze(eyes, pose, open_eyes) if pose is not None and open_eyes else None
            keypoints = (
                tuple(eyes.iris[0, 0, :2].tolist()),
                tuple(eyes.iris[1, 0, :2].tolist()),
                tuple(landmarks[_NOSE_TIP, :2].tolist()),
                tuple(((landmarks[_UPPER_INNER_LIP, :2] + landmarks[_LOWER_INNER_LIP, :2]) / 2).tolist()),
                tuple(landmarks[_RIGHT_TRAGION, :2].tolist()),
                tuple(landmarks[_LEFT_TRAGION, :2].tolist()),
            )
            faces.append(
                Face(
                    box=_bounding_box(landmarks),
                    score=mesh.presence,
                    keypoints=keypoints,
                    landmarks=landmarks,
                    pose=pose,
                    gaze=gaze,
                    eye_openness=sum(openness) / 2,
                    mouth_openness=face_geometry.mouth_openness(landmarks),
                    iris=eyes.iris,
                )
            )
            geometry_ms += _ms_since(mark)
        if meshes:
            timings["iris"] = iris_ms
            timings["face_geometry"] = geometry_ms
        return faces

    def _camera_matrix(self, width: int, height: int) -> np.ndarray:
        if self._camera is None or self._camera[0] != (width, height):
            self._camera = (width, height), face_geometry.camera_matrix(width, height, self._hfov, self._intrinsics)
        return self._camera[1]


def _bounding_box(landmarks: np.ndarray) -> Box:
    low, high = landmarks[:, :2].min(axis=0), landmarks[:, :2].max(axis=0)
    return Box(float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))


def _centre_inside(box: Box, other: Box) -> bool:
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    return other.x <= cx <= other.x + other.w and other.y <= cy <= other.y + other.h


def _ms_since(mark: float) -> float:
    return (time.perf_counter() - mark) * 1000
