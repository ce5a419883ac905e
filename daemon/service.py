"""The daemon: wires camera -> inference -> session rules -> store -> MQTT / web, runs until told to stop.

Everything that runs beside the frame loop is a part (daemon/parts.py) in one list, started in order and
stopped in reverse; the status page, /metrics, the health monitor and the retained MQTT status all read
one snapshot made of the parts' own status.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import Future

from daemon import __version__
from daemon.capture.grabber import FrameGrabber
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import Config
from daemon.events.conditions import OBJECT_RULES
from daemon.events.identity import IdentityReference
from daemon.events.rules import Instant
from daemon.gpio import open_panel
from daemon.health import HealthMonitor, Vitals
from daemon.host import HostPart
from daemon.inference.analyzer import FrameAnalyzer, face_only_if_missing
from daemon.inference.object_status import ObjectDetectionStatus
from daemon.inference.reference_photo import ReferencePhotos
from daemon.latest_frame import LatestFrame
from daemon.notify import SystemdNotifier
from daemon.parts import DaemonStatus, OffPart, Part, SessionListener
from daemon.pipeline import FramePipeline
from daemon.recording.identity_reference import ReferenceKeeper
from daemon.recording.service import RecordingService
from daemon.session import SessionController, SessionError, SessionPart
from daemon.store.db import Store, StoreReader
from daemon.store.part import StorePart
from daemon.store.records import CandidateInfo, ReviewEntry, SessionRecord
from daemon.store.writer import StoreWriter
from daemon.sync.commands import CommandActions, StoreRequestLog
from daemon.sync.contract import KioskStatus, Topics
from daemon.sync.mqtt import MqttPublisher
from daemon.sync.part import MqttPart
from daemon.sync.uploader import Uploader

log = logging.getLogger(__name__)


class Daemon:
    def __init__(self, config: Config, clock: Clock = SYSTEM_CLOCK):
        self.config = config
        self.clock = clock
        self._stop = threading.Event()
        self._state = "starting"

        # The models' hashes were checked with the rest of the start-up checks (daemon/preflight.py).
        self.topics = Topics.from_config(config)
        self.reader = StoreReader(config.database_path)
        self.writer = StoreWriter.for_config(config)
        self.recording = RecordingService(config, self.writer, self.reader, clock,
                                          topics=self.topics if config.mqtt.enabled else None)
        self.latest_frame = LatestFrame()  # for the web page's live view
        self.mqtt = MqttPart(config.mqtt, self.reader, lambda: MqttPublisher.from_config(
            config.mqtt, self.topics, self.reader, self._acknowledge, self._command_actions(), clock
        ))
        # Without its (mirror-only) model files, object detection is off and the kiosk proctors face-only.
        inference, objects_off = face_only_if_missing(config.inference, config.models_dir)
        if objects_off and config.inference.object_model != "off":
            log.warning("object detection off, proctoring face-only: %s", objects_off)
        self.sessions = SessionController(
            config.rules, self.writer, self.topics, on_committed=self.mqtt.outbox_changed,
            recorder=self.recording.recorder, min_analysed_share=config.session.min_analysed_share,
            not_checked=OBJECT_RULES if objects_off else (), identity=config.identity,
            reference_keeper=ReferenceKeeper(
                config.identity, config.recordings_dir if config.recording.enabled else None,
                config.recording.snapshot_quality,
            ),
        )
        # live: object detection runs on its own thread while the analysis part runs
        self.pipeline = FramePipeline(
            FrameAnalyzer(inference, config.models_dir, live=True, identity=config.identity), self.sessions,
            self.recording.recorder,
            clock, stale_after_s=config.camera.timeout_s,
        )
        # Opens (and reopens) the camera on its own thread: a camera that is absent does not stop the start.
        self.grabber = FrameGrabber.for_camera(config.camera, clock)
        # systemd (READY, STATUS, WATCHDOG while frames are analysed, STOPPING) and the panel light.
        panel = open_panel(config.gpio, on_hold=self.toggle_session)
        self.health = HealthMonitor(
            lambda: Vitals.of(self.status(only=Vitals.PARTS)), SystemdNotifier.from_environment(), panel,
            config.service.stall_after_s, clock,
        )
        # Started in this order, stopped in reverse: the store closes after every write of the others,
        # the session ends (interrupted) after the frames stop and before the uplink flushes, and the
        # health monitor says STOPPING to systemd first.
        self.uploader = Uploader.from_config(config, self.writer, on_outbox=self.mqtt.outbox_changed, clock=clock)
        self.parts: list[Part] = [
            StorePart(self.writer, config.database_path),
            self.recording,
            self.mqtt,
            self.uploader,
            SessionPart(self.sessions),
            self._web(),
            self.pipeline,
            ObjectDetectionStatus(config.inference, objects_off),
            self.grabber,
            self._audio(),
            HostPart(config.data_dir),
            panel,
            self.health,
        ]
        for part in self.parts:
            if isinstance(part, SessionListener):
                self.sessions.listen(part)

    def _audio(self) -> Part:
        if not self.config.audio.enabled:
            return OffPart("audio", "audio.enabled is false")
        from daemon.audio import AudioPart  # onnxruntime: only when the microphone is used

        return AudioPart(self.config.audio, self.config.models_dir, self.sessions, self.recording.recorder, self.clock)

    def _web(self) -> Part:
        if not self.config.web.enabled:
            return OffPart("web", "web.enabled is false")
        # the web layer is optional; import it only when used
        from webui.app import WebBackend
        from webui.server import WebServer

        return WebServer.for_daemon(self.config.web, WebBackend(
            status=self.status,
            reader=self.reader,
            rules=self.config.rules,
            start_session=self.start_session,
            stop_session=self.sessions.stop,
            open_events=lambda: self.sessions.open_events,
            record_review=self.record_review,
            latest_frame=self.latest_frame.get,
            camera=self.grabber.status,
            data_dir=self.config.data_dir,
            recordings_dir=self.config.recordings_dir,
            read_reference_photo=self._read_reference_photo(),
        ))

    def record_review(self, entries: list[ReviewEntry]) -> list[ReviewEntry]:
        """The exam board's review actions, committed together (a reviewer waits: no retrying on a full disk)."""
        return self.writer.submit(lambda store: [store.add_review(entry) for entry in entries], retry=False).result()

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
        except (SessionError, OSError) as exc:  # a wrong state, or a full disk: said, never a dead panel thread
            log.warning("panel button: %s", exc)

    def _start_configured_session(self) -> None:
        s = self.config.session
        self.start_session(CandidateInfo(s.candidate_name, s.candidate_id, s.exam_id))

    def start_session(self, info: CandidateInfo, reference: IdentityReference | None = None) -> SessionRecord:
        """Start a session now (the web form, the MQTT command, the panel, auto_start), with the identity
        reference a photo gave, if any; a camera already lost counts as lost from the session's first moment."""
        return self.sessions.start(info, self.now(), camera_online=self.grabber.stats.online, reference=reference)

    def _read_reference_photo(self) -> Callable[[bytes], IdentityReference] | None:
        """Identity checks on: reads a reference photo given at a start (None: no photo is taken)."""
        if not self.config.identity.enabled:
            return None
        photos = ReferencePhotos(self.config.inference, self.config.identity, self.config.models_dir)
        return lambda data: photos.read(data, self.clock.time())

    def run(self) -> None:
        self._recover_interrupted_sessions()
        started: list[Part] = []
        try:
            for part in self.parts:
                part.start()
                started.append(part)
            if self.config.session.auto_start:
                try:
                    self._start_configured_session()
                except (SessionError, OSError) as exc:  # e.g. a full disk: up and degraded, not aborted
                    log.error("session.auto_start: %s; running without a session", exc)
            self._state = "running"
            self._analyse_until_stopped()
        finally:
            self._state = "stopping"
            log.info("stopping")
            for part in reversed(started):
                try:
                    part.stop()
                except Exception:  # the next parts still stop: the store must close, the outbox flush
                    log.exception("stopping %s failed", part.name)

    def status(self, only: Collection[str] | None = None) -> DaemonStatus:
        """The snapshot; `only` names the parts a frequent reader needs (the health monitor checks four
        times a second and needs no database query, disk or temperature reading)."""
        return DaemonStatus(
            version=__version__,
            kiosk=self.config.kiosk.name,
            site=self.config.kiosk.site,
            state=self._state,
            session=self.sessions.active,
            open_events=self.sessions.open_events,
            parts=tuple(part.status() for part in self.parts if only is None or part.name in only),
        )

    def kiosk_status(self) -> KioskStatus:
        """What the retained MQTT status and the ping command report."""
        status = self.status(only=("capture", "analysis"))  # the publisher adds the outbox backlog itself
        analysis = status.part("analysis")
        return KioskStatus(
            # A rate from before the camera went offline is not reported as today's ("LOST 25 fps").
            status.version, status.session, status.part("capture").state == "ok", float(analysis.current("fps") or 0),
            self.writer.summary(), self.uploader.summary(),
        )

    def _command_actions(self) -> CommandActions:
        return CommandActions(
            start_session=self.start_session,
            stop_session=lambda: self.sessions.stop(),
            latest_frame=lambda: (latest := self.latest_frame.get()) and latest.frame,
            status=self.kiosk_status,
            save_snapshot=lambda frame: self.recording.take_snapshot(frame, self.sessions.active),
            requests=StoreRequestLog(self.writer, self.reader, self.config.mqtt.command_ids_kept_s, self.clock),
            read_reference_photo=self._read_reference_photo(),
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
        """Feed camera_lost the grabber's exact times: lost at the last frame before a gap, restored at the
        first after it, and the state now, so a configured onset_s/release_s runs on without frames."""
        camera = self.grabber.poll_camera()
        for change in camera.changes:
            self.sessions.observe_camera(change.online, Instant(change.mono, change.wall))
        self.sessions.observe_camera(camera.online, self.now())

    def _source_ended(self) -> None:
        self._state = "source_ended"
        log.info("video source %s ended; still serving status and reports", self.grabber.stats.source)
        if self.config.session.stop_at_end_of_source and self.sessions.active:
            self.sessions.stop()

    def _recover_interrupted_sessions(self) -> None:
        def close_and_announce(store: Store) -> None:
            self.recording.recover(store)  # the files they left, before their chains close
            store.close_interrupted(self.sessions.alert_messages, self.sessions.stop_message)

        def closed(done: Future) -> None:
            if done.exception() is not None:
                log.error("closing the sessions a crash left open failed", exc_info=done.exception())
            self.mqtt.outbox_changed()

        # Not waited for: every later write queues behind it, and a full disk must not hold up the start.
        self.writer.submit(close_and_announce).add_done_callback(closed)

    def _acknowledge(self, message_ids: list[str]) -> Future:
        return self.writer.submit(lambda store: store.ack(message_ids))
