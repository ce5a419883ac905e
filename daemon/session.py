"""The session lifecycle: start, per-frame rules, stop; and what each step commits and announces.

Thread-safe: the pipeline thread feeds frames while the web page or an MQTT command starts and stops
sessions. Every change is committed (with its outgoing MQTT messages, in one transaction) on the
store thread before it is announced; the parts that care (SessionListener) are told of each start and
stop on the thread that asked for it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace

from daemon.config import IdentityConfig, RulesConfig, SessionConfig
from daemon.events.identity import IdentityReference, SimilaritySample
from daemon.events.model import Event, EventChange, SessionMetrics
from daemon.events.rules import Instant, RuleEngine
from daemon.events.voice import TIMELINE_ONLY
from daemon.inference.analysis import AudioAnalysis, FrameAnalysis
from daemon.parts import Figure, PartStatus, SessionListener
from daemon.recording.identity_reference import ReferenceKeeper
from daemon.recording.recorder import Recorder
from daemon.report import build_report
from daemon.store import identity as identity_store
from daemon.store.db import Store
from daemon.store.records import CandidateInfo, OutboxMessage, SessionRecord
from daemon.store.writer import StoreWriter
from daemon.sync.contract import Topics

log = logging.getLogger(__name__)

# How often a running session's progress (last known time, frame count) is committed: the most a
# crash can take off the end of an interrupted session.
PROGRESS_EVERY_S = 2.0
# The most a stop waits for the recorder to close the session's files.
RECORDING_STOP_TIMEOUT_S = 30.0
# The most a stop waits for its commit (longer only when the disk is full: the write is retried from memory).
STOP_COMMIT_TIMEOUT_S = 10.0


class SessionError(Exception):
    """A request that does not fit the current state, e.g. starting while a session runs."""


class OfflineTime:
    """How long a session went without frames, from the capture's online/offline reports (on the clock,
    so a camera missing for the whole session counts in full, though no frame ever marks the time)."""

    def __init__(self, started: Instant):
        self._since: float | None = None  # offline since (monotonic), while offline
        self._total = 0.0  # of the spans already over
        self._latest = started.mono

    def observe(self, online: bool, at: Instant) -> None:
        if not online and self._since is None:
            self._since = at.mono
        elif online and self._since is not None:
            self._total += max(at.mono - self._since, 0.0)
            self._since = None
        self._latest = max(self._latest, at.mono)

    @property
    def offline(self) -> bool:
        return self._since is not None

    @property
    def seconds(self) -> float:
        """Up to the latest report; a span still going counts so far."""
        return self.until(self._latest)

    def until(self, mono: float) -> float:
        """Up to `mono` (the session's end): a span still going runs up to it."""
        return self._total + (max(mono - self._since, 0.0) if self._since is not None else 0.0)


class SessionController:
    def __init__(
        self,
        rules: RulesConfig,
        writer: StoreWriter,
        topics: Topics,
        on_committed: Callable[[], None] = lambda: None,
        recorder: Recorder | None = None,
        min_analysed_share: float = SessionConfig.model_fields["min_analysed_share"].default,
        not_checked: tuple[str, ...] = (),
        identity: IdentityConfig | None = None,
        reference_keeper: ReferenceKeeper | None = None,
    ):
        self._rules = rules
        self._identity = identity if identity is not None and identity.enabled else None
        self._reference_keeper = reference_keeper  # stores a session's identity reference once taken
        self._min_analysed_share = min_analysed_share
        self._not_checked = not_checked  # event types this kiosk cannot check (face-only: no object model)
        self._recorder = recorder  # records the session and each event's clip and snapshot
        self._writer = writer
        self._topics = topics
        self._on_committed = on_committed  # new outbox rows are ready to send
        self._lock = threading.Condition()
        self._listeners: list[SessionListener] = []
        self._starting = False  # a start is being committed
        self._closed = False  # the daemon is stopping
        self._session: SessionRecord | None = None
        self._engine: RuleEngine | None = None
        self._frames = 0
        self._last_progress = 0.0
        self._last_seen = Instant(0.0, 0.0)  # the latest moment known: a frame's, or the capture's report's
        self._offline = OfflineTime(Instant(0.0, 0.0))
        self._started = Instant(0.0, 0.0)
        self._last_offline_progress = 0.0

    @property
    def active(self) -> SessionRecord | None:
        return self._session

    @property
    def open_events(self) -> tuple[Event, ...]:
        """The running session's events that have started and not ended (for the panel light)."""
        with self._lock:
            return tuple(self._engine.open_events) if self._engine else ()

    def listen(self, listener: SessionListener) -> None:
        """Tell `listener` of every session start and stop from now on."""
        self._listeners.append(listener)

    def start(
        self, info: CandidateInfo, at: Instant, camera_online: bool = True, *, reference: IdentityReference | None = None
    ) -> SessionRecord:
        """`camera_online` False: the camera is lost already, so the session is without frames from its start.
        `reference` (a reference photo's embedding) replaces the identity check-in's."""
        with self._lock:
            if self._closed:
                raise SessionError("the daemon is stopping")
            if self._starting:
                raise SessionError("a session is being started")
            if self._session is not None:
                raise SessionError(f"session {self._session.id} is already running")
            self._starting = True
        # Committed (and synced) without the lock, so the frame path's observe() never waits on the disk;
        # frames analysed before the commit find no session, as they would a moment earlier.
        try:
            session = self._writer.submit(
                lambda store: store.start_session(
                    info, at.wall, self._start_message, self._min_analysed_share, self._not_checked
                ),
                retry=False,
            ).result()
        except BaseException:  # a full disk (StoreUnavailable) reaches the caller as the OSError it is
            with self._lock:
                self._starting = False
                self._lock.notify_all()
            raise
        with self._lock:
            self._session, self._starting = session, False
            if self._recorder:
                self._recorder.start_session(session.id)
            self._engine = RuleEngine(self._rules, session.id, lambda: uuid.uuid4().hex, self._identity,
                                      reference if self._identity else None)
            self._frames, self._last_progress, self._last_seen = 0, at.mono, at
            self._offline, self._last_offline_progress, self._started = OfflineTime(at), at.mono, at
            if not camera_online:
                self._offline.observe(False, at)
                self._commit_changes(self._engine.update_camera(at, False))
            self._lock.notify_all()
        if reference is not None and self._identity:
            self._keep_reference(session.id, reference)
        log.info("session %s started (candidate %r, exam %r)", session.id, info.candidate_id, info.exam_id)
        self._on_committed()
        for listener in self._listeners:
            listener.session_started(session)
        return session

    def stop(self, at: Instant | None = None, state: str = "completed") -> SessionRecord:
        """End the running session at `at` (default: the latest moment known, the last analysed frame's or,
        without frames, the capture's last report's) and close its open events."""
        with self._lock:
            if self._session is None or self._engine is None:
                raise SessionError("no session is running")
            at = at or self._last_seen
            reason = "session_stopped" if state == "completed" else "interrupted"
            closing = [replace(change, reason=reason) for change in self._engine.close(at)]
            for change in closing:
                log.info("event %s end (%s): %s", change.event.type, change.event.id, reason)
            stop = (self._session.id, closing, at.wall, self._frames, state, self._engine.metrics,
                    self._offline.until(at.mono), self._engine.identity.take_similarities())
            recorded = self._recorder.stop_session() if self._recorder else None
            self._session, self._engine = None, None
        if recorded is not None:
            # The session's last files join its chain before its stop, so the head the stop message
            # carries vouches for them too.
            try:
                recorded.result(timeout=RECORDING_STOP_TIMEOUT_S)
            except TimeoutError:
                log.error("the recorder did not close session %s's files in time; they join its chain later", stop[0])
        committed = self._writer.submit(lambda store: self._write_stop(store, *stop))
        committed.add_done_callback(lambda _: self._on_committed())
        try:
            finished = committed.result(STOP_COMMIT_TIMEOUT_S)
        except TimeoutError as exc:
            raise SessionError(
                f"session {stop[0]} stopped; its end is kept in memory and committed once the database can be"
                " written again (see the store status)"
            ) from exc
        log.info("session %s %s after %.1f s", finished.id, state, finished.duration)
        for listener in self._listeners:
            listener.session_stopped(finished)
        return finished

    def close(self) -> None:
        """The daemon is stopping: no session starts any more, and the running one ends as interrupted
        (a shutdown is not the end a supervisor chose)."""
        with self._lock:
            self._closed = True
            self._lock.wait_for(lambda: not self._starting)  # a start being committed becomes the running one
            running = self._session is not None
        if running:
            self.stop(state="interrupted")

    def observe(self, analysis: FrameAnalysis) -> None:
        """Feed one analysed frame to the running session's rules (no-op without a session)."""
        with self._lock:
            if self._engine is None or self._session is None:
                return
            self._frames += 1
            self._seen(Instant(analysis.mono, analysis.wall))
            self._commit_changes(self._engine.update(analysis))
            if (reference := self._engine.identity.take_reference()) is not None:
                self._keep_reference(self._session.id, reference)
            if analysis.mono - self._last_progress >= PROGRESS_EVERY_S:
                self._last_progress = analysis.mono
                self._save_progress()

    def _keep_reference(self, session_id: str, reference: IdentityReference) -> None:
        if self._reference_keeper is not None:
            keeper = self._reference_keeper
            self._writer.submit(lambda store: keeper.keep(store, session_id, reference))
            log.info("session %s: identity reference taken (%s, %d embeddings)", session_id, reference.source,
                     reference.samples)

    def observe_audio(self, audio: list[AudioAnalysis]) -> None:
        """Feed windows of sound to the running session's rules, in order (no-op without a session)."""
        with self._lock:
            if self._engine is None:
                return
            for window in audio:
                self._commit_changes(self._engine.update_audio(window))

    def observe_microphone(self, online: bool, at: Instant) -> None:
        """Whether the microphone delivers sound (fed by the microphone's thread)."""
        with self._lock:
            if self._engine is None:
                return
            self._commit_changes(self._engine.update_microphone(at, online))

    def observe_camera(self, online: bool, at: Instant) -> None:
        """Whether the camera delivers frames (fed by the capture loop, with or without frames): it measures
        the time without frames and keeps the session's progress going while no frame comes."""
        with self._lock:
            if self._engine is None or self._session is None:
                return
            if at.wall < self._session.started_at:  # a loss the capture saw before the session began
                at = self._started
            self._offline.observe(online, at)
            self._seen(at)
            self._commit_changes(self._engine.update_camera(at, online))
            if self._offline.offline and at.mono - self._last_offline_progress >= PROGRESS_EVERY_S:
                self._last_offline_progress = at.mono
                self._save_progress()

    def _seen(self, at: Instant) -> None:
        # A file read faster than real time stamps its frames ahead of the clock: the later moment wins.
        if at.wall >= self._last_seen.wall:
            self._last_seen = at

    def _save_progress(self) -> None:
        assert self._session is not None and self._engine is not None
        progress = (self._session.id, self._last_seen.wall, self._frames, self._engine.metrics, self._offline.seconds,
                    self._engine.identity.take_similarities())
        self._writer.submit(lambda store: self._write_progress(store, *progress))

    def _commit_changes(self, changes: list[EventChange]) -> None:
        for change in changes:
            future = self._writer.submit(lambda store, change=change: self._write_change(store, change))
            future.add_done_callback(lambda _: self._on_committed())
            if self._recorder and change.event.type not in TIMELINE_ONLY:
                (self._recorder.event_started if change.kind == "start" else self._recorder.event_ended)(change.event)
            log.info("event %s %s (%s)", change.event.type, change.kind, change.event.id)

    # These run on the store thread, inside the write's transaction.

    def _start_message(self, store: Store, session: SessionRecord) -> list[OutboxMessage]:
        return [self._topics.session_message(session, "start")]

    def _write_change(self, store: Store, change: EventChange) -> None:
        store.record_event(change, self.alert_messages(change))

    def _write_progress(
        self, store: Store, session_id: str, at: float, frames: int, metrics: SessionMetrics, offline_s: float,
        similarities: list[SimilaritySample],
    ) -> None:
        store.save_metrics(session_id, metrics)
        store.touch_session(session_id, at, frames, offline_s)
        self._write_similarities(store, session_id, similarities)

    def _write_stop(
        self, store: Store, session_id: str, closing: list[EventChange], at: float, frames: int, state: str,
        metrics: SessionMetrics, offline_s: float, similarities: list[SimilaritySample],
    ) -> SessionRecord:
        for change in closing:
            self._write_change(store, change)
        store.save_metrics(session_id, metrics)
        self._write_similarities(store, session_id, similarities)
        return store.finish_session(session_id, at, frames, state, self.stop_message, offline_s)

    @staticmethod
    def _write_similarities(store: Store, session_id: str, similarities: list[SimilaritySample]) -> None:
        if similarities:
            store.transact(identity_store.add_similarities, session_id, [(s.at, s.similarity) for s in similarities])

    def alert_messages(self, change: EventChange) -> list[OutboxMessage]:
        if change.event.type in TIMELINE_ONLY:
            return []
        return [self._topics.alert_message(change)]

    def stop_message(self, store: Store, session: SessionRecord) -> list[OutboxMessage]:
        """The session's stop message with its report summary, made inside the stop's transaction (its
        reads see the stop's own writes)."""
        report = build_report(session, store.view.events(session.id), self._rules, store.view.metrics(session.id))
        summary = {
            "integrity_score": report["integrity"]["score"], "event_counts": report["event_counts"],
            "evidence_chain": store.chain_head(session.id),
            "assessable": report["assessment"]["assessable"],
            "analysed_share": report["assessment"]["analysed_share"],
            "not_checked": report["session"]["not_checked"],
        }
        return [self._topics.session_message(session, "stop", summary)]


class SessionPart:
    """The session controller as one of the daemon's parts: stopping it ends the running session as
    interrupted (a shutdown is not the end a supervisor chose) and refuses new ones."""

    name = "session"

    def __init__(self, sessions: SessionController):
        self._sessions = sessions

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self._sessions.close()

    def status(self) -> PartStatus:
        session, open_events = self._sessions.active, self._sessions.open_events
        return PartStatus(self.name, "ok" if session else "off", None if session else "no session running", (
            Figure("running", "Running", session is not None, help="1 while a session runs"),
            Figure("open_events", "Open events", len(open_events), help="Events of the running session not yet ended"),
        ))
