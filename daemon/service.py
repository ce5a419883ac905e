"""The daemon: wires camera -> inference -> session rules -> store -> MQTT / web, runs until told to stop."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import asdict, dataclass

from daemon import __version__
from daemon.capture.grabber import FrameGrabber
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import Config
from daemon.events.rules import Instant
from daemon.gpio import open_panel
from daemon.health import HealthMonitor, Vitals
from daemon.inference.analyzer import FrameAnalyzer, required_models
from daemon.latest_frame import LatestFrame
from daemon.modelstore import MANIFEST_PATH, verify_models
from daemon.notify import SystemdNotifier
from daemon.pipeline import FramePipeline
from daemon.recording.service import RecordingService
from daemon.session import SessionController, SessionError
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo
from daemon.store.writer import StoreWriter
from daemon.sync.commands import CommandActions
from daemon.sync.contract import KioskStatus, Topics
from daemon.sync.mqtt import MqttPublisher
from daemon.sync.uploader import Uploader

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Status:
    """A snapshot for the status page, /api/status and /metrics."""

    version: str
    kiosk: str
    site: str
    state: str  # starting | running | source_ended | stopping
    source: str
    nominal_fps: float
    measured_fps: float
    frames_analysed: int
    frames_captured: int
    frames_dropped: int
    seconds_since_last_frame: float | None  # since the last frame the camera delivered
    capture_fps: float  # frames the camera delivers per second (measured_fps: frames analysed per second)
    camera_online: bool  # false once no frame came for camera.timeout_s (camera_lost)
    camera_reconnects: int
    camera_error: str | None  # why frames do not arrive now (None while they do)
    faces_in_view: int
    inference_ms: dict[str, float]
    face_model: str
    session: dict | None
    mqtt: dict
    recording: dict  # state: off | idle | recording | degraded (and why), files written, free space

    def as_dict(self) -> dict:
        return asdict(self)


class Daemon:
    def __init__(self, config: Config, clock: Clock = SYSTEM_CLOCK):
        self.config = config
        self.clock = clock
        self._stop = threading.Event()
        self._state = "starting"

        verify_models(MANIFEST_PATH, config.models_dir, required_models(config.inference))
        self.topics = Topics.from_config(config)
        self.reader = StoreReader(config.database_path)
        self.writer = StoreWriter(Store(config.database_path, kiosk=config.kiosk.name))
        self.recording = RecordingService(config, self.writer, self.reader, clock,
                                          topics=self.topics if config.mqtt.enabled else None)
        self.sessions = SessionController(
            config.rules, self.writer, self.reader, self.topics, on_committed=self._outbox_changed,
            recorder=self.recording.recorder,
        )
        self.publisher = (
            MqttPublisher.from_config(config.mqtt, self.topics, self.reader, self._acknowledge,
                                      self._command_actions(), clock)
            if config.mqtt.enabled else None
        )
        self.uploader = Uploader.from_config(config, self.writer, on_outbox=self._outbox_changed, clock=clock)
        # live: object detection runs on its own thread between analyzer.start() and analyzer.stop()
        self.analyzer = FrameAnalyzer(config.inference, config.models_dir, live=True)
        self.pipeline = FramePipeline(self.analyzer, self.sessions, self.recording.recorder)
        # Opens (and reopens) the camera on its own thread: a camera that is absent does not stop the start.
        self.grabber = FrameGrabber.for_camera(config.camera, clock)
        self._reference_session: str | None = None  # the session whose view reference was taken
        self.latest_frame = LatestFrame()  # for the web page's live view
        self.web = None
        if config.web.enabled:
            # the web layer is optional; import it only when used
            from webui.app import WebBackend
            from webui.server import WebServer

            self.web = WebServer.for_daemon(config.web, WebBackend(
                status=lambda: self.status().as_dict(),
                reader=self.reader,
                rules=config.rules,
                start_session=lambda info: self.sessions.start(info, self.now()),
                stop_session=self.sessions.stop,
                open_events=lambda: self.sessions.open_events,
                latest_frame=self.latest_frame.get,
                data_dir=config.data_dir,
                recordings_dir=config.recordings_dir,
            ))
        # systemd (READY, STATUS, WATCHDOG while frames are analysed, STOPPING) and the panel light.
        self.panel = open_panel(config.gpio, on_press=lambda: self.health.acknowledge(), on_hold=self.toggle_session)
        self.health = HealthMonitor(
            self._vitals, SystemdNotifier.from_environment(), self.panel, config.service.stall_after_s, clock
        )

    def request_stop(self) -> None:
        self._stop.set()

    def now(self) -> Instant:
        return Instant(self.clock.monotonic(), self.clock.time())

    def toggle_session(self) -> None:
        """The panel button's hold: stop the running session, or start one for the configured candidate."""
        try:
            if self.sessions.active:
                self.sessions.stop()
            else:
                self._start_configured_session()
        except SessionError as exc:
            log.warning("panel button: %s", exc)

    def _start_configured_session(self) -> None:
        s = self.config.session
        self.sessions.start(CandidateInfo(s.candidate_name, s.candidate_id, s.exam_id), self.now())

    def _vitals(self) -> Vitals:
        session = self.sessions.active
        return Vitals(
            phase=self._state,
            camera_online=self.grabber.stats.online,
            frames_analysed=self.pipeline.stats.frames,
            session_id=session.id if session else None,
            open_events=self.sessions.open_events,
        )

    def run(self) -> None:
        self._recover_interrupted_sessions()
        self.recording.start()
        self.uploader.start()
        if self.publisher:
            self.publisher.start()
        if self.web:
            self.web.start()
        self.analyzer.start()
        self.grabber.start()
        if self.config.session.auto_start:
            self._start_configured_session()
        self._state = "running"
        self.health.start()
        try:
            self._analyse_until_stopped()
        finally:
            self._shutdown()

    def status(self) -> Status:
        capture = self.grabber.stats
        stats = self.pipeline.stats
        session = self.sessions.active
        since_frame = capture.seconds_since_last_frame
        return Status(
            version=__version__,
            kiosk=self.config.kiosk.name,
            site=self.config.kiosk.site,
            state=self._state,
            source=capture.source,
            nominal_fps=capture.nominal_fps,
            measured_fps=round(stats.fps, 2),
            frames_analysed=stats.frames,
            frames_captured=capture.captured,
            frames_dropped=capture.dropped,
            seconds_since_last_frame=None if since_frame is None else round(since_frame, 3),
            capture_fps=round(capture.fps, 2),
            camera_online=capture.online,
            camera_reconnects=capture.reconnects,
            camera_error=capture.error,
            faces_in_view=stats.faces,
            inference_ms={stage: round(ms, 2) for stage, ms in stats.timings_ms.items()},
            face_model=self.analyzer.face_model,
            session=asdict(session) if session else None,
            mqtt={
                "enabled": self.publisher is not None,
                "broker": f"{self.config.mqtt.host}:{self.config.mqtt.port}",
                "connected": bool(self.publisher and self.publisher.connected),
                "outbox_backlog": self.reader.outbox_backlog(),
            },
            recording=self.recording.status(),
        )

    def kiosk_status(self) -> KioskStatus:
        """What the retained MQTT status and the ping command report."""
        capture = self.grabber.stats
        camera_ok = capture.online and not capture.ended
        return KioskStatus(__version__, self.sessions.active, camera_ok, self.pipeline.stats.fps)

    def _command_actions(self) -> CommandActions:
        return CommandActions(
            start_session=lambda info: self.sessions.start(info, self.now()),
            stop_session=lambda: self.sessions.stop(),
            latest_frame=lambda: (latest := self.latest_frame.get()) and latest.frame,
            status=self.kiosk_status,
            snapshot_dir=self.config.data_dir / "snapshots",
        )

    def _analyse_until_stopped(self) -> None:
        while not self._stop.is_set():
            self.health.loop_passed()
            frame = self.grabber.next_frame(timeout=0.5)
            if frame is not None:
                self.latest_frame.publish(frame, self.pipeline.process(frame))
            elif self.grabber.stats.ended:
                if self._state != "source_ended":
                    self._source_ended()
                self._stop.wait(0.5)  # nothing more to analyse, but alive: keep feeding the watchdog
            self._follow_camera()

    def _follow_camera(self) -> None:
        """Feed camera_lost the grabber's exact times, and give each new session its view reference."""
        session = self.sessions.active
        if session is not None and session.id != self._reference_session:
            # However the session was started (auto, web, MQTT, panel): camera_moved compares with this view.
            self._reference_session = session.id
            self.grabber.take_reference()
        camera = self.grabber.poll_camera()
        for change in camera.changes:  # lost at the last frame before the gap, restored at the first after it
            self.sessions.observe_camera(change.online, Instant(change.mono, change.wall))
        self.sessions.observe_camera(camera.online, self.now())  # so a configured onset_s/release_s runs on

    def _source_ended(self) -> None:
        self._state = "source_ended"
        log.info("video source %s ended; still serving status and reports", self.grabber.stats.source)
        if self.config.session.stop_at_end_of_source and self.sessions.active:
            self.sessions.stop()

    def _recover_interrupted_sessions(self) -> None:
        def close_and_announce():
            self.recording.recover(self.writer.store)  # the files they left, before their chains close
            for session in self.writer.store.close_interrupted():
                self.sessions.announce_finished(session)

        self.writer.submit(close_and_announce).result()

    def _acknowledge(self, message_ids: list[str]) -> Future:
        return self.writer.submit(self.writer.store.ack, message_ids)

    def _outbox_changed(self) -> None:
        if self.publisher:
            self.publisher.wake()

    def _shutdown(self) -> None:
        self._state = "stopping"
        log.info("stopping")
        self.health.stop()  # STOPPING to systemd, no more pings, the panel off (its button too)
        if self.publisher:
            self.publisher.stop_commands()  # no session starts behind the shutdown's back
        self.grabber.stop()
        self.analyzer.stop()
        try:
            # A shutdown is not the end a supervisor chose: the session is marked interrupted.
            self.sessions.stop(state="interrupted")
        except SessionError:
            pass
        if self.publisher:
            self.publisher.stop()
        if self.web:
            self.web.stop()
        self.uploader.stop()
        self.recording.stop()
        self.writer.close()
