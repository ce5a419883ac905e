"""Capture off the analysis thread: latest-frame semantics, reopening, the camera's online state.

- The analysis always gets the newest frame; when it is slower than the camera, older frames are
  dropped and counted, never queued without bound.
- The grabber owns opening the source: one that cannot be opened, fails or ends early (a live stream)
  is closed and reopened after a capped exponential backoff (reopen_min_s, doubling up to reopen_max_s,
  back to reopen_min_s once a frame arrives). Nothing here raises to the caller: a kiosk that boots
  with the camera unplugged comes up and reports the camera lost.
- The camera is *online* while frames arrive; it is *lost* once no frame has arrived for timeout_s,
  whatever the cause (unplugged, a failing read, a read that hangs). A loss is stamped with the time of
  the last frame before the gap (or of the start, if none came), a recovery with the time of the first
  frame after it; both are kept in order until the run loop collects them (poll_camera), so none is
  missed however the threads interleave.
- Each frame gets its FrameQuality (daemon/capture/quality.py) here, off the analysis thread.
- It is the daemon's "capture" part (daemon/parts.py); a session start makes the next frame the view
  reference that camera_moved compares with.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from daemon.capture.audio import AudioSource
from daemon.capture.frame import Frame
from daemon.capture.quality import QualityMeter
from daemon.capture.sources import FrameSource, SourceError, check_source, open_source, source_name
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import CameraConfig
from daemon.parts import Figure, PartStatus

if TYPE_CHECKING:
    from daemon.store.records import SessionRecord

log = logging.getLogger(__name__)

# The capture fps is measured over the last this many frames.
FPS_WINDOW = 30


@dataclass(frozen=True, slots=True)
class CaptureStats:
    source: str
    nominal_fps: float  # what the source says (a file's own rate) or what was configured
    online: bool
    fps: float  # measured at the source over the last FPS_WINDOW frames; 0 while offline
    captured: int
    dropped: int  # captured but replaced by a newer frame before the analysis took them
    reconnects: int  # times the source was opened again after a failure
    seconds_since_last_frame: float | None  # None before the first frame
    ended: bool  # a video file (without loop) reached its end; nothing more will come
    error: str | None  # the failure that keeps frames from arriving now; None while they do


@dataclass(frozen=True, slots=True)
class CameraChange:
    """The camera went offline (at the last frame before the gap) or came back (at the first frame)."""

    online: bool
    mono: float
    wall: float


@dataclass(frozen=True, slots=True)
class CameraReport:
    online: bool
    changes: tuple[CameraChange, ...]  # since the last report, oldest first


class Backoff:
    """Delays between reopening attempts: first_s, doubling, capped at max_s; reset after a success."""

    def __init__(self, first_s: float, max_s: float):
        self._first_s = first_s
        self._max_s = max_s
        self._next_s = first_s

    def next_delay(self) -> float:
        delay = self._next_s
        self._next_s = min(self._next_s * 2, self._max_s)
        return delay

    def reset(self) -> None:
        self._next_s = self._first_s


class FrameGrabber:
    name = "capture"

    def __init__(
        self,
        open_source: Callable[[], FrameSource],
        *,
        name: str,
        nominal_fps: float,
        timeout_s: float,
        backoff: Backoff,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self._open_source = open_source
        self._name = name
        self._nominal_fps = nominal_fps
        self._timeout_s = timeout_s
        self._backoff = backoff
        self._clock = clock
        self._meter = QualityMeter()  # capture thread only
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        # Shared with the analysis and status threads, under _cond:
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._captured = 0
        self._dropped = 0
        self._opened = 0
        self._ended = False
        self._error: str | None = None
        self._reference_wanted = False
        self._arrivals: deque[float] = deque(maxlen=FPS_WINDOW)  # clock.monotonic() of recent frames
        self._online = True  # until timeout_s passes without a frame
        self._last_arrival = clock.monotonic()
        self._last_stamp = (self._last_arrival, clock.time())  # the last frame's (mono, wall), or the start's
        self._changes: list[CameraChange] = []

    @classmethod
    def for_camera(cls, camera: CameraConfig, clock: Clock = SYSTEM_CLOCK) -> FrameGrabber:
        """The grabber of the configured source. Raises SourceError only for what no retry can fix
        (a missing video file, a backend this machine lacks); an absent camera is waited for."""
        check_source(camera)
        return cls(
            lambda: open_source(camera, clock),
            name=source_name(camera),
            nominal_fps=camera.fps,
            timeout_s=camera.timeout_s,
            backoff=Backoff(camera.reopen_min_s, camera.reopen_max_s),
            clock=clock,
        )

    def start(self) -> None:
        with self._cond:  # the timeout counts from the start, not from construction
            self._last_arrival = self._clock.monotonic()
            self._last_stamp = (self._last_arrival, self._clock.time())
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)
        if self._thread.is_alive():
            log.warning("capture thread still blocked in a read of %s; leaving it behind", self._name)

    def next_frame(self, timeout: float) -> Frame | None:
        """The newest frame not yet taken; None after `timeout` seconds (at once once the source ended)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._latest is not None or self._ended or self._stop.is_set(), timeout
            )
            frame, self._latest = self._latest, None
            return frame

    def take_reference(self) -> None:
        """The next frame becomes the reference view for FrameQuality.view_shift."""
        with self._cond:
            self._reference_wanted = True

    def session_started(self, session: SessionRecord) -> None:
        # However the session was started (auto, web, MQTT, panel): camera_moved compares with this view.
        self.take_reference()

    def session_stopped(self, session: SessionRecord) -> None:
        pass

    def status(self) -> PartStatus:
        stats = self.stats
        if stats.ended:
            state, reason = "off", "the video ended"
        elif stats.online:
            state, reason = "ok", None
        else:
            state, reason = "failed", stats.error or f"no frame for more than {self._timeout_s:g} s"
        since = stats.seconds_since_last_frame
        offline = not stats.online
        return PartStatus(self.name, state, reason, (
            Figure("source", "Source", stats.source, "path" if stats.source.startswith("/") else "", kind="info"),
            Figure("online", "Camera online", stats.online, help="1 while the camera delivers frames"),
            Figure("fps", "Delivered", None if offline else round(stats.fps, 2), "fps",  # 0 while offline: not a rate
                   help="Frames the camera delivers per second",
                   stale=offline),
            Figure("nominal_fps", "Configured", stats.nominal_fps, "fps", help="The source's own frame rate"),
            Figure("frames", "Frames delivered", stats.captured, kind="counter", help="Frames delivered by the camera"),
            Figure("dropped", "Frames dropped", stats.dropped, kind="counter",
                   help="Frames dropped because the analysis was busy"),
            Figure("reconnects", "Reconnects", stats.reconnects, kind="counter", help="Times the camera was reopened"),
            Figure("last_frame_age_seconds", "Last frame", None if since is None else round(since, 3), "s ago",
                   help="Seconds since the camera delivered a frame"),
        ), title="Camera")

    def poll_camera(self) -> CameraReport:
        """Whether the camera is online now, and the changes since the last poll with their exact times."""
        with self._cond:
            self._check_timeout(self._clock.monotonic())
            changes, self._changes = tuple(self._changes), []
            return CameraReport(self._online, changes)

    @property
    def stats(self) -> CaptureStats:
        with self._cond:
            now = self._clock.monotonic()
            self._check_timeout(now)
            arrivals = self._arrivals
            span = arrivals[-1] - arrivals[0] if arrivals else 0.0
            fps = (len(arrivals) - 1) / span if span > 0 else 0.0
            return CaptureStats(
                source=self._name,
                nominal_fps=self._nominal_fps,
                online=self._online,
                fps=fps,
                captured=self._captured,
                dropped=self._dropped,
                reconnects=max(0, self._opened - 1),
                seconds_since_last_frame=now - self._last_arrival if self._captured else None,
                ended=self._ended,
                error=self._error,
            )

    # --- capture thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            source = self._open()
            if source is None:
                self._stop.wait(self._backoff.next_delay())
                continue
            try:
                ended = self._read_until_failure(source)
            finally:
                close_quietly(source)
            if ended:
                with self._cond:
                    self._ended = True
                    self._cond.notify_all()
                log.info("video source %s ended", self._name)
                return
            self._stop.wait(self._backoff.next_delay())

    def _open(self) -> FrameSource | None:
        try:
            source = self._open_source()
        except Exception as exc:  # noqa: BLE001 - whatever a backend throws, the camera is just not there
            self._failed(exc)
            return None
        with self._cond:
            self._opened += 1
            self._nominal_fps = source.nominal_fps
            reopened = self._opened > 1
        if reopened:
            log.info("video source %s reopened", self._name)
        return source

    def _read_until_failure(self, source: FrameSource) -> bool:
        """Deliver frames until the source fails (False) or ends (True), or the grabber stops."""
        first = True
        while not self._stop.is_set():
            try:
                frame = source.read()
            except Exception as exc:  # noqa: BLE001 - a failing read must not end capture
                self._failed(exc)
                return False
            if frame is None:
                return True
            if first:
                self._backoff.reset()  # opening worked and frames come: the next failure starts over
                first = False
            self._deliver(frame)
        return False

    def _deliver(self, frame: Frame) -> None:
        with self._cond:
            as_reference, self._reference_wanted = self._reference_wanted, False
        quality = self._meter.measure(frame.image, as_reference=as_reference)
        now = self._clock.monotonic()
        with self._cond:
            self._check_timeout(now)  # a gap nobody polled during is still a loss
            if not self._online:
                self._online = True
                self._changes.append(CameraChange(True, frame.mono, frame.wall))
                log.info("camera %s restored", self._name)
            # Numbered by the grabber, so seq keeps growing across reopenings.
            frame = dataclasses.replace(frame, seq=self._captured, quality=quality)
            if self._latest is not None:
                self._dropped += 1
            self._latest = frame
            self._captured += 1
            self._error = None
            self._last_arrival = now
            self._last_stamp = (frame.mono, frame.wall)
            self._arrivals.append(now)
            self._cond.notify_all()

    def _failed(self, exc: Exception) -> None:
        message = str(exc) if isinstance(exc, SourceError) else f"{self._name}: {type(exc).__name__}: {exc}"
        with self._cond:
            repeated = message == self._error
            self._error = message
        # The same failure every backoff step would flood the log: say it once until something changes.
        (log.debug if repeated else log.warning)("%s", message)

    def _check_timeout(self, now: float) -> None:
        """Call with _cond held."""
        if self._online and now - self._last_arrival > self._timeout_s:
            self._online = False
            self._arrivals.clear()
            self._changes.append(CameraChange(False, *self._last_stamp))
            log.warning("camera %s lost: no frame for %.1f s", self._name, self._timeout_s)


def close_quietly(source: FrameSource | AudioSource) -> None:
    try:
        source.close()
    except Exception:  # closing a failed camera or microphone may fail too; it is dropped anyway
        log.debug("closing %s failed", source.name, exc_info=True)
