"""Is the daemon up and making progress? Said to systemd (READY, STATUS, WATCHDOG, STOPPING) and shown on
the panel light, from a thread of its own that only reads snapshots: the per-frame path just marks each
pass of the analysis loop.

Progress means the analysis loop keeps passing and, while the camera is online, frames keep being
analysed. A camera the capture layer has called lost, or a video that ended, is not a stall: the daemon is
alive and reports it, and a restart would not bring the camera back. A stall stops the watchdog pings, so
systemd restarts the daemon once WatchdogSec has passed without one.

The monitor is the daemon's "health" part (daemon/parts.py), started last and stopped first: STOPPING
reaches systemd before anything else shuts down. Its vitals are read off the daemon's status snapshot.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.events.model import Event
from daemon.gpio import Light, Panel
from daemon.notify import SystemdNotifier
from daemon.parts import DaemonStatus, Figure, PartStatus

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.25


@dataclass(frozen=True, slots=True)
class Vitals:
    """What the monitor reads off the daemon at each check."""

    phase: str  # the daemon's state: starting | running | source_ended | stopping
    camera_online: bool  # the capture layer's view: False once it has called the camera lost
    frames_analysed: int
    session_id: str | None
    open_events: tuple[Event, ...] = ()

    PARTS: ClassVar = ("capture", "analysis")  # the parts of the snapshot the vitals are read from

    @classmethod
    def of(cls, status: DaemonStatus) -> Vitals:
        return cls(
            phase=status.state,
            camera_online=bool(status.part("capture").figure("online")),
            frames_analysed=int(status.part("analysis").figure("frames") or 0),
            session_id=status.session.id if status.session else None,
            open_events=status.open_events,
        )


class HealthMonitor:
    name = "health"

    def __init__(
        self,
        vitals: Callable[[], Vitals],
        notifier: SystemdNotifier,
        panel: Panel,
        stall_after_s: float,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self._vitals = vitals
        self._notifier = notifier
        self._panel = panel
        self._stall_after = stall_after_s
        self._clock = clock
        period = notifier.watchdog_period_s
        # systemd's advice: ping at half the period, so one late check does not cost a restart.
        self._ping_every = period / 2 if period else None
        self._ready = False
        self._line = ""
        self._next_ping = 0.0
        self._passes = 0  # written by the analysis loop only
        self._passes_seen = 0
        self._loop_mono = 0.0  # when the monitor last saw the loop pass
        self._frames = 0
        self._frames_mono = 0.0  # when the monitor last saw the frame count move
        self._expecting_frames = False
        self._announced: set[str] = set()  # high-severity alerts already buzzed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)

    def loop_passed(self) -> None:
        """Called by the analysis loop on every pass, frame or not; the monitor notices the count move."""
        self._passes += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Shutdown begins: no more pings, STOPPING to systemd."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._notifier.stopping("stopping: closing the session")
        self._notifier.close()

    def status(self) -> PartStatus:
        line = self._line
        state = "ok" if self._ready and not line.startswith("fault") else "degraded" if self._ready else "off"
        return PartStatus(self.name, state, line if state == "degraded" else None, (
            Figure("summary", "Status", line or "starting", kind="info"),
            Figure("systemd", "systemd", "notified" if self._notifier.enabled else "not under systemd", kind="info"),
        ), title="Health")

    def check(self) -> None:
        """One look at the daemon (the monitor thread calls it every CHECK_EVERY_S)."""
        vitals = self._vitals()
        now = self._clock.monotonic()
        becomes_ready = not self._ready
        if becomes_ready:
            if not self._up(vitals):
                return
            self._ready = True
            self._loop_mono = self._frames_mono = now  # stalls count from READY: start-up has its own timeout
        stall = self._stall(vitals, now)
        light, line = self._assess(vitals, stall)
        if becomes_ready:
            self._notifier.ready(line)
            log.info("ready: %s", line)
        elif line != self._line:
            self._notifier.status(line)
            (log.error if stall else log.info)("%s", line)
        self._line = line
        self._panel.show(light)
        self._buzz_new_alerts(vitals)
        if stall is None and self._ping_every is not None and now >= self._next_ping:
            self._notifier.watchdog()
            self._next_ping = now + self._ping_every

    def _run(self) -> None:
        while not self._stop.wait(CHECK_EVERY_S):
            try:
                self.check()
            except Exception:
                # Without checks there are no pings either: systemd will restart us, which is right.
                log.exception("health check failed")

    @staticmethod
    def _up(vitals: Vitals) -> bool:
        """READY once models and camera are up: the first frame is analysed, or the capture layer has
        called the camera lost (the daemon still serves status and reports camera_lost), or a video ended."""
        if vitals.phase == "starting":
            return False
        return vitals.frames_analysed > 0 or not vitals.camera_online or vitals.phase == "source_ended"

    def _stall(self, vitals: Vitals, now: float) -> str | None:
        if self._passes != self._passes_seen:
            self._passes_seen, self._loop_mono = self._passes, now
        if vitals.frames_analysed != self._frames:
            self._frames, self._frames_mono = vitals.frames_analysed, now
        expecting = vitals.camera_online and vitals.phase == "running"
        if expecting and not self._expecting_frames:
            self._frames_mono = now  # frames are due from now on, not since before the camera came back
        self._expecting_frames = expecting
        if now - self._loop_mono > self._stall_after:
            return "the analysis loop is stuck"
        if expecting and now - self._frames_mono > self._stall_after:
            return "no frame analysed while the camera is online"
        return None

    def _assess(self, vitals: Vitals, stall: str | None) -> tuple[Light, str]:
        """The light to show and the one-line STATUS for `systemctl status`."""
        alerts = sorted({event.type for event in self._panel.unacknowledged(vitals.open_events)})
        if vitals.phase in ("starting", "stopping"):
            return Light.OFF, vitals.phase
        session = f"session {vitals.session_id}" if vitals.session_id else "no session"
        if stall:
            return Light.FAULT, f"fault: stalled, {stall}; {session}"
        if vitals.phase == "source_ended":
            camera = "video ended"
        elif vitals.camera_online:
            camera = "camera online"
        else:
            return Light.FAULT, f"fault: camera lost; {session}"
        if vitals.session_id and alerts:
            return Light.ALERT, f"alert: {', '.join(alerts)}; {session}; {camera}"
        if vitals.session_id:
            return Light.PROCTORING, f"proctoring: {session}; {camera}"
        return Light.IDLE, f"idle: no session; {camera}"

    def _buzz_new_alerts(self, vitals: Vitals) -> None:
        high = {event.id for event in vitals.open_events if event.severity == "high"}
        if high - self._announced:
            self._panel.buzz()
        # Ids of closed events are dropped: they never come back, so the set stays small.
        self._announced = (self._announced | high) & {event.id for event in vitals.open_events}
