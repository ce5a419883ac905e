"""The newest analysed frame, for the web page's live view.

The pipeline hands over references only (no copy, no encoding): drawing and JPEG encoding happen in
the web request that asks for them, so a viewer can never slow the per-frame path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from daemon.capture.frame import Frame
from daemon.inference.analysis import FrameAnalysis


@dataclass(frozen=True, slots=True)
class AnalysedFrame:
    frame: Frame
    analysis: FrameAnalysis


class LatestFrame:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: AnalysedFrame | None = None

    def publish(self, frame: Frame, analysis: FrameAnalysis) -> None:
        latest = AnalysedFrame(frame, analysis)
        with self._lock:
            self._latest = latest

    def get(self) -> AnalysedFrame | None:
        with self._lock:
            return self._latest
