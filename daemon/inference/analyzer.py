"""Turns a Frame into a FrameAnalysis: the models run here, nothing else does."""

from __future__ import annotations

from pathlib import Path

from daemon.capture.frame import Frame
from daemon.config import InferenceConfig
from daemon.inference.analysis import FrameAnalysis
from daemon.inference.face_pipeline import (
    FACE_DETECTOR_FILES,
    FACE_MESH_FILE,
    FACE_MODEL_VARIANTS,
    IRIS_FILE,
    FacePipeline,
)
from daemon.inference.object_evidence import ConfirmedObjects, ObjectEvidence
from daemon.inference.object_worker import BackgroundObjects, InlineObjects
from daemon.inference.objects import load_object_detector, object_model_files


def required_models(config: InferenceConfig) -> list[str]:
    """The model files this config uses (the daemon checks their hashes at start-up)."""
    files = [FACE_DETECTOR_FILES[variant] for variant in FACE_MODEL_VARIANTS[config.face_model]]
    files += [FACE_MESH_FILE, IRIS_FILE]
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


class FrameAnalyzer:
    """`analyze(frame)` runs the face path on every frame and the object detector at its own rate.

    With `live=False` (replay, tests) the object detector runs inline on the frames due by frame time, so
    results depend only on the video. With `live=True` it runs on a worker thread between `start()` and
    `stop()`, and `analyze` reports its latest results without waiting for it.
    """

    def __init__(self, config: InferenceConfig, models_dir: Path, live: bool = False):
        self.face_model = "BlazeFace " + " + ".join(FACE_MODEL_VARIANTS[config.face_model]) + " range"  # for people
        self._faces = FacePipeline(config, models_dir)
        detector = load_object_detector(config, models_dir)
        runner = BackgroundObjects if live else InlineObjects
        self._objects = None
        if detector is not None:
            evidence = ObjectEvidence(config.object_confirm_passes, config.object_confirm_window)
            self._objects = runner(ConfirmedObjects(detector, evidence), config.object_rate_hz)
        self._objects_reported: float | None = None

    def start(self) -> None:
        if self._objects:
            self._objects.start()

    def stop(self) -> None:
        if self._objects:
            self._objects.stop()

    def analyze(self, frame: Frame) -> FrameAnalysis:
        found = self._faces.process(frame.image, frame.mono)
        timings = dict(found.timings_ms)
        objects, objects_mono = (), None
        if self._objects:
            snapshot = self._objects.update(frame.image, frame.mono, found.faces)
            objects, objects_mono = snapshot.objects, snapshot.mono
            if snapshot.mono is not None and snapshot.mono != self._objects_reported:
                timings["objects"] = snapshot.ms  # once per run, on the first frame that reports it
                self._objects_reported = snapshot.mono
        return FrameAnalysis(
            seq=frame.seq,
            mono=frame.mono,
            wall=frame.wall,
            width=frame.width,
            height=frame.height,
            faces=found.faces,
            objects=objects,
            objects_mono=objects_mono,
            quality=frame.quality,
            timings_ms=timings,
        )
