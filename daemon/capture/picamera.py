"""The Raspberry Pi camera (CSI) through picamera2 / libcamera.

picamera2 is imported only when `camera.kind = "picamera2"`: it exists on Raspberry Pi OS (apt's
python3-picamera2, seen by a venv created with --system-site-packages) and nowhere else.
"""

from __future__ import annotations

import logging

from daemon.capture.frame import Frame
from daemon.capture.sources import SourceError
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import CameraConfig

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "on Raspberry Pi OS: `sudo apt install python3-picamera2` and a venv created with "
    "`python3 -m venv --system-site-packages .venv`"
)
# The usual break: apt's simplejpeg (or another compiled helper) built for another numpy than the venv's
# ("numpy.dtype size changed"). systemd/install.sh pip-installs the pinned simplejpeg into the venv.
REPAIR_HINT = "run systemd/install.sh again, or `pip install simplejpeg` (constraints.txt's pin) into the venv"


def check_picamera2() -> None:
    """Import picamera2 for real, at start-up. Finding the module is not enough: a stack that is there but
    does not import would otherwise surface only when the camera opens, and look like an absent camera."""
    try:
        import picamera2  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name != "picamera2":
            raise _broken(exc) from exc
        raise SourceError(f'camera.kind = "picamera2": the picamera2 library is missing ({INSTALL_HINT})') from exc
    except Exception as exc:
        raise _broken(exc) from exc


def _broken(exc: Exception) -> SourceError:
    return SourceError(
        f'camera.kind = "picamera2": the picamera2 library does not import: {type(exc).__name__}: {exc} '
        f"({REPAIR_HINT})"
    )


class Picamera2Source:
    """Camera `camera.path` ("0" = the first) at width x height and fps, as BGR frames.

    A missing camera, or one that delivers no frame within camera.timeout_s, raises SourceError; the
    grabber closes and reopens it.
    """

    def __init__(self, camera: CameraConfig, clock: Clock = SYSTEM_CLOCK):
        from picamera2 import Picamera2

        self.name = f"picamera2:{camera.path}"
        self.nominal_fps = camera.fps
        self._clock = clock
        self._timeout_s = camera.timeout_s
        self._seq = 0
        index = int(camera.path)
        try:
            found = len(Picamera2.global_camera_info())
            if index >= found:
                raise SourceError(f"{self.name}: no such camera ({found} found by libcamera; ribbon seated?)")
            self._camera = Picamera2(index)
        except SourceError:
            raise
        except Exception as exc:  # libcamera reports a busy or failing camera with assorted errors
            raise SourceError(f"{self.name}: cannot open: {exc}") from exc
        try:
            # "RGB888" is libcamera's name for B, G, R byte order: what OpenCV calls BGR.
            self._camera.configure(self._camera.create_video_configuration(
                main={"size": (camera.width, camera.height), "format": "RGB888"},
                controls={"FrameRate": camera.fps},
            ))
            self._camera.start()
        except Exception as exc:
            self._camera.close()
            raise SourceError(f"{self.name}: cannot start: {exc}") from exc
        log.info("opened video source %s", self.name)

    def read(self) -> Frame:
        try:
            job = self._camera.capture_array("main", wait=False)
            image = self._camera.wait(job, timeout=self._timeout_s)
        except TimeoutError as exc:
            raise SourceError(f"{self.name}: no frame within {self._timeout_s} s") from exc
        except Exception as exc:
            raise SourceError(f"{self.name}: capture failed: {exc}") from exc
        frame = Frame(image=image, seq=self._seq, mono=self._clock.monotonic(), wall=self._clock.time())
        self._seq += 1
        return frame

    def close(self) -> None:
        try:
            self._camera.stop()
        finally:
            self._camera.close()
