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

from daemon.config import IdentityConfig, RulesConfig
from daemon.events.identity import IdentityReference, SimilaritySample
from daemon.events.model import Event, EventChange, SessionMetrics
from daemon.events.rules import Instant, RuleEngine
from daemon.inference.analysis import FrameAnalysis
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


class SessionController:
    def __init__(
        self,
        rules: RulesConfig,
        writer: StoreWriter,
        topics: Topics,
        on_committed: Callable[[], None] = lambda: None,
        recorder: Recorder | None = None,
        identity: IdentityConfig | None = None,
        reference_keeper: ReferenceKeeper | None = None,
    ):
        self._rules = rules
        self._identity = identity if identity is not None and identity.enabled else None
        self._reference_keeper = reference_keeper  # stores a session's identity reference once taken
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
        self._last_seen = Instant(0.0, 0.0)

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

    def start(self, info: CandidateInfo, at: Instant, reference: IdentityReference | None = None) -> SessionRecord:
        """Open a session; `reference` (a reference photo's embedding) replaces the check-in's."""
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
                lambda store: store.start_session(info, at.wall, self._start_message), retry=False
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
            self._lock.notify_all()
        if reference is not None and self._identity:
            self._keep_reference(session.id, reference)
        log.info("session %s started (candidate %r, exam %r)", session.id, info.candidate_id, info.exam_id)
        self._on_committed()
        for listener in self._listeners:
            listener.session_started(session)
        return session

    def stop(self, at: Instant | None = None, state: str = "completed") -> SessionRecord:
        """End the running session at `at` (default: the last analysed frame) and close its open events."""
        with self._lock:
            if self._session is None or self._engine is None:
                raise SessionError("no session is running")
            at = at or self._last_seen
            reason = "session_stopped" if state == "completed" else "interrupted"
            closing = [replace(change, reason=reason) for change in self._engine.close(at)]
            for change in closing:
                log.info("event %s end (%s): %s", change.event.type, change.event.id, reason)
            stop = (self._session.id, closing, at.wall, self._frames, state, self._engine.metrics,
                    self._engine.identity.take_similarities())
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
            self._last_seen = Instant(analysis.mono, analysis.wall)
            self._commit_changes(self._engine.update(analysis))
            if (reference := self._engine.identity.take_reference()) is not None:
                self._keep_reference(self._session.id, reference)
            if analysis.mono - self._last_progress >= PROGRESS_EVERY_S:
                self._last_progress = analysis.mono
                progress = (self._session.id, analysis.wall, self._frames, self._engine.metrics,
                            self._engine.identity.take_similarities())
                self._writer.submit(lambda store: self._write_progress(store, *progress))

    def _keep_reference(self, session_id: str, reference: IdentityReference) -> None:
        if self._reference_keeper is not None:
            keeper = self._reference_keeper
            self._writer.submit(lambda store: keeper.keep(store, session_id, reference))
            log.info("session %s: identity reference taken (%s, %d embeddings)", session_id, reference.source,
                     reference.samples)

    def observe_camera(self, online: bool, at: Instant) -> None:
        """Whether the camera delivers frames (fed by the capture loop, with or without frames)."""
        with self._lock:
            if self._engine is None:
                return
            self._commit_changes(self._engine.update_camera(at, online))

    def _commit_changes(self, changes: list[EventChange]) -> None:
        for change in changes:
            future = self._writer.submit(lambda store, change=change: self._write_change(store, change))
            future.add_done_callback(lambda _: self._on_committed())
            if self._recorder:
                (self._recorder.event_started if change.kind == "start" else self._recorder.event_ended)(change.event)
            log.info("event %s %s (%s)", change.event.type, change.kind, change.event.id)

    # These run on the store thread, inside the write's transaction.

    def _start_message(self, store: Store, session: SessionRecord) -> list[OutboxMessage]:
        return [self._topics.session_message(session, "start")]

    def _write_change(self, store: Store, change: EventChange) -> None:
        store.record_event(change, self.alert_messages(change))

    def _write_progress(
        self, store: Store, session_id: str, at: float, frames: int, metrics: SessionMetrics,
        similarities: list[SimilaritySample],
    ) -> None:
        store.save_metrics(session_id, metrics)
        store.touch_session(session_id, at, frames)
        self._write_similarities(store, session_id, similarities)

    def _write_stop(
        self, store: Store, session_id: str, closing: list[EventChange], at: float, frames: int, state: str,
        metrics: SessionMetrics, similarities: list[SimilaritySample],
    ) -> SessionRecord:
        for change in closing:
            self._write_change(store, change)
        store.save_metrics(session_id, metrics)
        self._write_similarities(store, session_id, similarities)
        return store.finish_session(session_id, at, frames, state, self.stop_message)

    @staticmethod
    def _write_similarities(store: Store, session_id: str, similarities: list[SimilaritySample]) -> None:
        if similarities:
            store.transact(identity_store.add_similarities, session_id, [(s.at, s.similarity) for s in similarities])

    def alert_messages(self, change: EventChange) -> list[OutboxMessage]:
        return [self._topics.alert_message(change)]

    def stop_message(self, store: Store, session: SessionRecord) -> list[OutboxMessage]:
        """The session's stop message with its report summary, made inside the stop's transaction (its
        reads see the stop's own writes)."""
        report = build_report(session, store.view.events(session.id), self._rules, store.view.metrics(session.id))
        summary = {
            "integrity_score": report["integrity"]["score"], "event_counts": report["event_counts"],
            "evidence_chain": store.chain_head(session.id),
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
