"""Frame sources: one small interface over video files and OpenCV cameras."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import cv2

from daemon.capture.frame import Frame
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import CameraConfig

log = logging.getLogger(__name__)


class SourceError(Exception):
    """The source cannot be opened or has failed."""


class FrameSource(Protocol):
    name: str
    nominal_fps: float

    def read(self) -> Frame | None:
        """The next frame; None at the end of a finite source. Raises SourceError on failure."""

    def close(self) -> None: ...


class VideoFileSource:
    """A recorded video played as if it were the camera.

    realtime=True paces frames at the file's own rate and stamps them with the clock (a demo, a test of
    the live pipeline); realtime=False reads as fast as the caller asks and stamps frames with the file's
    timeline, so a replay gives the same events on any machine.
    """

    def __init__(self, path: Path, *, realtime: bool, loop: bool = False, clock: Clock = SYSTEM_CLOCK):
        self.name = str(path)
        self._path = path
        self._realtime = realtime
        self._loop = loop
        self._clock = clock
        self._capture = _open_capture(str(path), self.name)
        self.nominal_fps = self._capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self._seq = 0
        self._start_mono = clock.monotonic()
        self.start_wall = clock.time()

    def read(self) -> Frame | None:
        ok, image = self._capture.read()
        if not ok and self._loop and self._seq > 0:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
        if not ok:
            return None
        offset = self._seq / self.nominal_fps
        if self._realtime:
            delay = self._start_mono + offset - self._clock.monotonic()
            if delay > 0:
                self._clock.sleep(delay)
            mono, wall = self._clock.monotonic(), self._clock.time()
        else:
            mono, wall = offset, self.start_wall + offset
        frame = Frame(image=image, seq=self._seq, mono=mono, wall=wall)
        self._seq += 1
        return frame

    def close(self) -> None:
        self._capture.release()


class OpenCVCameraSource:
    """A V4L2/USB camera by index ("0") or device path ("/dev/video0")."""

    def __init__(self, device: str, *, width: int, height: int, fps: float, clock: Clock = SYSTEM_CLOCK):
        self.name = device
        self.nominal_fps = fps
        self._clock = clock
        target = int(device) if device.isdigit() else device
        self._capture = _open_capture(target, device, cv2.CAP_V4L2)
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture.set(cv2.CAP_PROP_FPS, fps)
        self._seq = 0

    def read(self) -> Frame | None:
        ok, image = self._capture.read()
        if not ok:
            raise SourceError(f"camera {self.name} delivered no frame")
        frame = Frame(image=image, seq=self._seq, mono=self._clock.monotonic(), wall=self._clock.time())
        self._seq += 1
        return frame

    def close(self) -> None:
        self._capture.release()


def open_source(camera: CameraConfig, clock: Clock = SYSTEM_CLOCK) -> FrameSource:
    if camera.kind == "file":
        path = Path(camera.path)
        if not path.is_file():
            raise SourceError(f"camera.path: video file {str(path)!r} does not exist")
        return VideoFileSource(path, realtime=camera.realtime, loop=camera.loop, clock=clock)
    return OpenCVCameraSource(camera.path, width=camera.width, height=camera.height, fps=camera.fps, clock=clock)


def _open_capture(target, name: str, api: int = cv2.CAP_ANY) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(target, api)
    if not capture.isOpened():
        raise SourceError(f"cannot open video source {name!r}")
    log.info("opened video source %s", name)
    return capture
