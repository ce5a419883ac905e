"""The live view's picture: the newest analysed frame, annotated and JPEG-encoded on demand.

Throttled: at most `max_fps` encodings per second whatever the number of viewers; every viewer in
between gets the same cached JPEG. Encoding holds no lock the pipeline needs.

While the camera is offline there is no picture, but a sentence saying so ("Camera offline — last frame
5 min ago"), from the capture part's own status: an old frame is never shown as if it were live.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import cv2

from daemon.clock import Clock
from daemon.events.model import Event
from daemon.latest_frame import AnalysedFrame
from daemon.overlay import annotate
from daemon.parts import PartStatus, age_text

MAX_WIDTH = 640
JPEG_QUALITY = 75


class LiveView:
    def __init__(
        self,
        latest: Callable[[], AnalysedFrame | None],
        open_events: Callable[[], Sequence[Event]],
        max_fps: float,
        clock: Clock,
    ):
        self._latest = latest
        self._open_events = open_events
        self.max_fps = max_fps
        self._clock = clock
        self._lock = threading.Lock()  # one encoder at a time; other viewers wait for its result
        self._jpeg: bytes | None = None
        self._encoded_from: AnalysedFrame | None = None
        self._encoded_at = float("-inf")
        self.encodings = 0

    def jpeg(self) -> bytes | None:
        """The newest picture, None before the first analysed frame."""
        with self._lock:
            now = self._clock.monotonic()
            if now - self._encoded_at < 1.0 / self.max_fps:
                return self._jpeg
            latest = self._latest()
            if latest is None or latest is self._encoded_from:
                return self._jpeg
            picture = annotate(latest.frame.image, latest.analysis, self._open_events(), MAX_WIDTH)
            ok, encoded = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                self._jpeg, self._encoded_from, self._encoded_at = encoded.tobytes(), latest, now
                self.encodings += 1
            return self._jpeg


def camera_offline(camera: PartStatus) -> str | None:
    """None while the camera delivers frames; else what the live view and the start form say instead."""
    if camera.figure("online"):
        return None
    age = camera.figure("last_frame_age_seconds")
    return "Camera offline — " + ("no frame yet" if age is None else f"last frame {age_text(float(age))} ago")
