"""Whether this kiosk looks for objects (phones, books, other people) or proctors face-only, as a status
card: the status page, /metrics and the log say so, with what to do about it."""

from __future__ import annotations

from daemon.config import InferenceConfig
from daemon.parts import Figure, FiguresOnly, PartStatus


class ObjectDetectionStatus(FiguresOnly):
    name = "objects"

    def __init__(self, config: InferenceConfig, off_reason: str | None):
        self._model = config.object_model
        self._off_reason = off_reason  # from face_only_if_missing: None while objects are looked for

    def status(self) -> PartStatus:
        figures = (Figure("model", "Model", self._model, kind="info"),
                   Figure("running", "Looking for objects", self._off_reason is None,
                          help="1 while the object detector runs (0: face-only proctoring)"))
        if self._off_reason is None:
            return PartStatus(self.name, "ok", None, figures, title="Object detection")
        return PartStatus(self.name, "off", f"face-only: {self._off_reason}", figures, title="Object detection")
