"""Capture off the analysis thread, with latest-frame semantics.

The analysis always gets the newest frame; when it is slower than the camera, older frames are
dropped and counted, never queued without bound.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from daemon.capture.frame import Frame
from daemon.capture.sources import FrameSource, SourceError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CaptureStats:
    captured: int
    dropped: int
    ended: bool
    error: str | None


class FrameGrabber:
    def __init__(self, source: FrameSource):
        self._source = source
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._captured = 0
        self._dropped = 0
        self._ended = False
        self._error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._source.close()

    def next_frame(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken; None after `timeout` seconds or once the source has ended."""
        with self._cond:
            self._cond.wait_for(lambda: self._latest is not None or self._ended, timeout)
            frame, self._latest = self._latest, None
            return frame

    @property
    def stats(self) -> CaptureStats:
        with self._cond:
            return CaptureStats(self._captured, self._dropped, self._ended, self._error)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._source.read()
            except SourceError as exc:
                log.error("%s", exc)
                frame, self._error = None, str(exc)
            with self._cond:
                if frame is None:
                    self._ended = True
                    self._cond.notify_all()
                    return
                if self._latest is not None:
                    self._dropped += 1
                self._latest = frame
                self._captured += 1
                self._cond.notify_all()
