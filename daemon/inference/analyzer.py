"""Turns a Frame into a FrameAnalysis: the models run here, nothing else does."""

from __future__ import annotations

from pathlib import Path

from daemon.capture.frame import Frame
from daemon.config import IdentityConfig, InferenceConfig
from daemon.inference.analysis import FrameAnalysis
from daemon.inference.face_embedding import BUNDLED_EMBEDDING_MODEL, CandidateEmbedding, FaceEmbedder
from daemon.inference.face_landmarks import FaceMeshModel
from daemon.inference.face_pipeline import (
    FACE_DETECTOR_FILES,
    FACE_MESH_FILE,
    FACE_MODEL_VARIANTS,
    IRIS_FILE,
    FacePipeline,
)
from daemon.inference.object_evidence import ConfirmedObjects, ObjectEvidence
from daemon.inference.object_worker import BackgroundJob, InlineJob, JobResult
from daemon.inference.objects import load_object_detector, object_model_files


def required_models(config: InferenceConfig, identity: IdentityConfig | None = None) -> list[str]:
    """The model files this config uses (the daemon checks their hashes at start-up). Another identity model
    than the bundled one is the exam centre's own, not pinned."""
    files = [FACE_DETECTOR_FILES[variant] for variant in FACE_MODEL_VARIANTS[config.face_model]]
    files += [FACE_MESH_FILE, IRIS_FILE]
    if identity is not None and identity.enabled and identity.model_file == BUNDLED_EMBEDDING_MODEL:
        files.append(BUNDLED_EMBEDDING_MODEL)
    return files + object_model_files(config)


def face_only_if_missing(config: InferenceConfig, models_dir: Path) -> tuple[InferenceConfig, str | None]:
    """The inference config to run, and why object detection is off (None: it runs).

    A bundled object model whose files are not in the models directory (the COCO models are mirror-only)
    turns object detection off instead of stopping the start: the kiosk proctors face-only. A file that is
    there but corrupt is still refused by the start-up model check."""
    if config.object_model == "off":
        return config, "inference.object_model is off"
    if config.object_model == "custom":  # the user's own files: a missing one is an error to fix
        return config, None
    missing = [name for name in object_model_files(config) if not (models_dir / name).exists()]
    if not missing:
        return config, None
    return config.model_copy(update={"object_model": "off"}), (
        f"model missing ({', '.join(missing)}); install with `proctord models fetch --from DIR` (DIR holding them)"
    )


def load_identity_stage(identity: IdentityConfig, models_dir: Path, inference: InferenceConfig) -> CandidateEmbedding:
    embedder = FaceEmbedder(models_dir / identity.model_file, identity.input_format, inference.threads)
    mesh = FaceMeshModel(models_dir / FACE_MESH_FILE, inference.threads)
    return CandidateEmbedding(embedder, mesh, identity.min_eye_distance_px, identity.max_yaw_deg,
                              inference.landmark_min_score)


class FrameAnalyzer:
    """`analyze(frame)` runs the face path on every frame, the object detector and the identity stage at their
    own rates.

    With `live=False` (replay, tests) the object detector and the identity stage (when enabled) run inline on
    the frames due by frame time, so results depend only on the video. With `live=True` each runs on its own
    worker thread between `start()` and `stop()`, and `analyze` reports their latest results without waiting.
    """

    def __init__(
        self, config: InferenceConfig, models_dir: Path, live: bool = False, identity: IdentityConfig | None = None
    ):
        self.face_model = "BlazeFace " + " + ".join(FACE_MODEL_VARIANTS[config.face_model]) + " range"  # for people
        self._faces = FacePipeline(config, models_dir)
        detector = load_object_detector(config, models_dir)
        runner = BackgroundJob if live else InlineJob
        self._objects = None
        if detector is not None:
            confirmed = ConfirmedObjects(detector, ObjectEvidence(config.object_confirm_passes,
                                                                  config.object_confirm_window))
            self._objects = runner(lambda image, faces: tuple(confirmed.detect(image, faces)),
                                   config.object_rate_hz, "objects")
        self._identity_stage = None
        self._identity = None
        if identity is not None and identity.enabled:
            self._identity_stage = load_identity_stage(identity, models_dir, config)
            self._identity = runner(self._identity_stage, 1 / identity.interval_s, "identity")
        self._reported: dict[str, float] = {}  # side job -> the frame time of its last run reported

    @property
    def _side_jobs(self) -> list:
        return [job for job in (self._objects, self._identity) if job is not None]

    def start(self) -> None:
        for job in self._side_jobs:
            job.start()

    def stop(self) -> None:
        for job in self._side_jobs:
            job.stop()

    def analyze(self, frame: Frame) -> FrameAnalysis:
        found = self._faces.process(frame.image, frame.mono)
        timings = dict(found.timings_ms)
        objects = identity = JobResult()
        if self._objects:
            objects = self._report("objects", self._objects.update(frame.image, frame.mono, found.faces), timings)
        if self._identity and self._identity_stage:
            wanted = self._identity_stage.wanted(found.faces)
            identity = self._report("identity", self._identity.update(frame.image, frame.mono, found.faces, wanted),
                                    timings)
        return FrameAnalysis(
            seq=frame.seq,
            mono=frame.mono,
            wall=frame.wall,
            width=frame.width,
            height=frame.height,
            faces=found.faces,
            objects=objects.value or (),
            objects_mono=objects.mono,
            identity=identity.value,
            identity_mono=identity.mono if identity.value is not None else None,
            quality=frame.quality,
            timings_ms=timings,
        )

    def _report(self, stage: str, result: JobResult, timings: dict[str, float]) -> JobResult:
        """The side job's latest result; its time goes into `timings` once per run, on the first frame
        that reports it."""
        if result.mono is not None and result.mono != self._reported.get(stage):
            timings[stage] = result.ms
            self._reported[stage] = result.mono
        return result
