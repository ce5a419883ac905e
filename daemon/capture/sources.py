"""Frame sources: one small interface over video files, V4L2/USB cameras, GStreamer pipelines, RTSP/HTTP
streams and the Raspberry Pi camera (daemon/capture/picamera.py).

A source is opened by constructing it and raises SourceError when it cannot be opened or fails; the
grabber (daemon/capture/grabber.py) reopens it. Only a video file ends (read() returns None); a live
source whose stream ends has failed, and is reopened like an unplugged camera.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import cv2

from daemon.capture.frame import Frame
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.compat import UTC
from daemon.config import CameraConfig
from daemon.errors import UserError

log = logging.getLogger(__name__)


class SourceError(UserError):
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

    def __init__(
        self, path: Path, *, realtime: bool, loop: bool = False, clock: Clock = SYSTEM_CLOCK,
        start_wall: float | None = None,
    ):
        self.name = str(path)
        self._realtime = realtime
        self._loop = loop
        self._clock = clock
        self._capture = _open_capture(str(path), self.name)
        self.nominal_fps = self._capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self._seq = 0
        self._start_mono = clock.monotonic()
        # Not realtime: frames are stamped from here (the video's own recording time, when it has one).
        self.start_wall = clock.time() if start_wall is None else start_wall

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


class LiveCaptureSource:
    """A live source read through OpenCV: a V4L2/USB camera, a GStreamer pipeline or an RTSP/HTTP URL.

    Frames are stamped with the clock when they arrive. A read that returns nothing (unplugged, stream
    ended, the backend's read timeout) raises SourceError.
    """

    def __init__(
        self, target: str | int, api: int, *, name: str, nominal_fps: float, clock: Clock = SYSTEM_CLOCK,
        params: Sequence[int] = (), properties: dict[int, float] | None = None,
    ):
        self.name = name
        self._clock = clock
        self._capture = _open_capture(target, name, api, params)
        # Set after opening: a backend refuses to open with open-parameters it does not consume.
        for prop, value in (properties or {}).items():
            self._capture.set(prop, value)
        self.nominal_fps = nominal_fps
        self._seq = 0

    @classmethod
    def v4l2(cls, camera: CameraConfig, clock: Clock = SYSTEM_CLOCK) -> LiveCaptureSource:
        # OpenCV's V4L2 backend waits 10 s for a frame that does not come, and ignores
        # CAP_PROP_READ_TIMEOUT_MSEC; this variable (whole seconds, read once per process) shortens it.
        os.environ.setdefault("OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT", str(math.ceil(camera.timeout_s)))
        target = int(camera.path) if camera.path.isdigit() else camera.path
        size_and_rate = {
            cv2.CAP_PROP_FRAME_WIDTH: camera.width,
            cv2.CAP_PROP_FRAME_HEIGHT: camera.height,
            cv2.CAP_PROP_FPS: camera.fps,
        }
        return cls(
            target, cv2.CAP_V4L2, name=camera.path, nominal_fps=camera.fps, clock=clock,
            properties=size_and_rate,
        )

    @classmethod
    def gstreamer(cls, camera: CameraConfig, clock: Clock = SYSTEM_CLOCK) -> LiveCaptureSource:
        # No read timeout: older GStreamer backends (JetPack's OpenCV) refuse to open with one. A stalled
        # pipeline is still called lost after camera.timeout_s; it is reopened once its read returns.
        return cls(camera.path, cv2.CAP_GSTREAMER, name=camera.path, nominal_fps=camera.fps, clock=clock)

    @classmethod
    def url(cls, camera: CameraConfig, clock: Clock = SYSTEM_CLOCK) -> LiveCaptureSource:
        # Without them a stalled stream blocks a read for FFmpeg's default of 30 s.
        read_ms = round(camera.timeout_s * 1000)
        params = (cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, max(read_ms, 5000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, read_ms)
        name = redact_url(camera.path)
        source = cls(
            camera.path, cv2.CAP_FFMPEG, name=name, nominal_fps=camera.fps, clock=clock, params=params
        )
        source.nominal_fps = source._capture.get(cv2.CAP_PROP_FPS) or camera.fps  # what the stream says
        return source

    def read(self) -> Frame:
        ok, image = self._capture.read()
        if not ok or image is None:
            raise SourceError(f"{self.name}: no frame (unplugged, stream ended or read timed out)")
        frame = Frame(image=image, seq=self._seq, mono=self._clock.monotonic(), wall=self._clock.time())
        self._seq += 1
        return frame

    def close(self) -> None:
        self._capture.release()


def recorded_at(path: Path) -> float | None:
    """When the video was recorded, from its container's creation_time (MP4, MOV, MKV), as epoch seconds;
    None when the file does not say."""
    import av  # PyAV: the container's metadata, which OpenCV does not expose

    try:
        with av.open(str(path)) as container:
            stamp = container.metadata.get("creation_time")
    except (av.FFmpegError, OSError):
        return None
    if not stamp:
        return None
    try:  # e.g. "2024-05-06T07:08:09.000000Z"; Python 3.10 does not read the Z
        moment = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def check_source(camera: CameraConfig) -> None:
    """Refuse, at start-up, a source that no retry can bring: a video file that is not there, a backend
    this machine lacks. A camera that is merely absent is not refused: the grabber waits for it."""
    if camera.kind == "file" and not Path(camera.path).is_file():
        raise SourceError(f"camera.path: video file {camera.path!r} does not exist")
    if camera.kind == "gstreamer" and not gstreamer_available():
        raise SourceError(
            'camera.kind = "gstreamer": this OpenCV build has no GStreamer support '
            "(cv2.getBuildInformation() says 'GStreamer: NO'; PyPI's opencv-python wheels never have it). "
            "On a Jetson, use JetPack's OpenCV (apt install nvidia-opencv) through a venv created with "
            "--system-site-packages, as systemd/install.sh does (PyPI's OpenCV is not installed there)."
        )
    if camera.kind == "picamera2":
        from daemon.capture.picamera import check_picamera2

        check_picamera2()


def open_source(camera: CameraConfig, clock: Clock = SYSTEM_CLOCK) -> FrameSource:
    """Open the configured source; SourceError when it cannot be opened now."""
    if camera.kind == "file":
        return VideoFileSource(Path(camera.path), realtime=camera.realtime, loop=camera.loop, clock=clock)
    if camera.kind == "opencv":
        return LiveCaptureSource.v4l2(camera, clock)
    if camera.kind == "gstreamer":
        return LiveCaptureSource.gstreamer(camera, clock)
    if camera.kind == "url":
        return LiveCaptureSource.url(camera, clock)
    from daemon.capture.picamera import Picamera2Source  # imports picamera2: only when configured

    return Picamera2Source(camera, clock)


def source_name(camera: CameraConfig) -> str:
    """How the status page names the source (a URL without its password)."""
    return redact_url(camera.path) if camera.kind == "url" else camera.path


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def gstreamer_available() -> bool:
    return any(
        line.strip().startswith("GStreamer:") and "YES" in line
        for line in cv2.getBuildInformation().splitlines()
    )


def _open_capture(
    target: str | int, name: str, api: int = cv2.CAP_ANY, params: Sequence[int] = ()
) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(target, api, list(params))
    if not capture.isOpened():
        raise SourceError(f"cannot open video source {name!r}")
    log.info("opened video source %s", name)
    return capture
