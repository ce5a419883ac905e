"""Turns a Frame into a FrameAnalysis: the models run here, nothing else does."""

from __future__ import annotations

import time
from pathlib import Path

from daemon.capture.frame import Frame
from daemon.config import InferenceConfig
from daemon.inference.analysis import FrameAnalysis
from daemon.inference.face_detector import FaceDetector

FACE_MODEL_FILES = {"short": "face_detection_short_range.tflite", "full": "face_detection_full_range.tflite"}


def required_models(config: InferenceConfig) -> list[str]:
    return [FACE_MODEL_FILES[config.face_model]]


class FrameAnalyzer:
    def __init__(self, config: InferenceConfig, models_dir: Path):
        self.face_model = FACE_MODEL_FILES[config.face_model]
        self._detector = FaceDetector(
            models_dir / self.face_model,
            variant=config.face_model,
            threads=config.threads,
            min_score=config.face_min_score,
        )

    def analyze(self, frame: Frame) -> FrameAnalysis:
        started = time.perf_counter()
        faces = self._detector.detect(frame.image)
        detect_ms = (time.perf_counter() - started) * 1000
        return FrameAnalysis(
            seq=frame.seq,
            mono=frame.mono,
            wall=frame.wall,
            width=frame.width,
            height=frame.height,
            faces=tuple(faces),
            quality=frame.quality,
            timings_ms={"face_detect": detect_ms},
        )
