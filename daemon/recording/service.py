"""Recording, retention and crash recovery wired to the store: the daemon's "recording" part."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future

from daemon.capture.frame import Frame
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import Config
from daemon.parts import Figure, PartStatus
from daemon.recording.disk import DiskSpace
from daemon.recording.recorder import Recorder, confirmation_delay_s
from daemon.recording.recovery import recover_session_files
from daemon.recording.retention import IdentityRetention, Retention
from daemon.recording.snapshot import REQUESTED, Snapshot, write_jpeg
from daemon.session import SessionError
from daemon.store import identity as identity_store
from daemon.store.db import Store, StoreReader
from daemon.store.records import MediaRecord, SessionRecord
from daemon.store.writer import StoreWriter
from daemon.sync.alert_snapshot import bounded_jpeg
from daemon.sync.contract import Topics

log = logging.getLogger(__name__)

# The most the snapshot command waits for its file's record (longer only when the disk is full).
SNAPSHOT_COMMIT_TIMEOUT_S = 10.0


class RecordingService:
    name = "recording"

    def __init__(self, config: Config, writer: StoreWriter, reader: StoreReader, clock: Clock = SYSTEM_CLOCK,
                 disk: DiskSpace | None = None, topics: Topics | None = None):
        self._writer = writer
        self._snapshot_quality = config.recording.snapshot_quality
        self._topics = topics  # set: each event's snapshot also goes on MQTT, size-bounded
        self.root = config.recordings_dir
        self.disk = disk or DiskSpace(self.root, config.retention.min_free_mb * 1_000_000)
        self.retention = Retention(config.retention, reader, self._record_deletion, self.disk, clock,
                                   IdentityRetention(config.identity.retention_days, self._purge_identity))
        self.recorder = (
            Recorder(config.recording, self.root, confirmation_delay_s(config.rules), self._commit_media, self.disk,
                     on_low_space=self.retention.wake, clock=clock, sound=config.audio.enabled and config.audio.record)
            if config.recording.enabled else None
        )

    def recover(self, store: Store) -> None:
        """Take in the files of the sessions a crash left running (store thread, before they are closed)."""
        for session in store.running_sessions():
            for media in recover_session_files(self.root, session.id, store.media_names(session.id)):
                store.add_media(media)

    def start(self) -> None:
        self.retention.start()
        if self.recorder:
            self.recorder.start()

    def stop(self) -> None:
        if self.recorder:
            self.recorder.close()
        self.retention.stop()

    def status(self) -> PartStatus:
        """The recorder's state (off, idle, recording, degraded and why), what it wrote, and the free space."""
        space = (
            Figure("free_bytes", "Free space", self.disk.free(), "bytes", help="Free space where recordings are kept"),
            Figure("min_free_bytes", "Kept free", self.disk.min_free_bytes, "bytes",
                   help="Free space retention keeps by deleting the oldest recordings"),
        )
        if self.recorder is None:
            return PartStatus(self.name, "off", "recording.enabled is false", space)
        recorder = self.recorder.status
        retention = self.retention.failure
        degraded = recorder.state == "degraded" or retention is not None
        reason = "; ".join(r for r in (recorder.reason, retention and f"retention: {retention}") if r) or None
        return PartStatus(self.name, "degraded" if degraded else "ok", reason, (
            Figure("recorder", "Recorder", recorder.state, kind="info"),
            Figure("frames_recorded", "Frames recorded", recorder.frames_recorded, kind="counter",
                   help="Frames written to recordings"),
            Figure("frames_dropped", "Frames not recorded", recorder.frames_dropped, kind="counter",
                   help="Frames the encoder fell behind on"),
            Figure("sound_dropped", "Sound chunks not recorded", recorder.sound_dropped, kind="counter",
                   help="Chunks of microphone sound the encoder fell behind on"),
            Figure("files_written", "Files written", recorder.files_written, kind="counter",
                   help="Segments, clips and snapshots written"),
            Figure("bytes_written", "Written", recorder.bytes_written, "bytes", kind="counter",
                   help="Bytes of segments, clips and snapshots written"),
            *space,
        ))

    def take_snapshot(self, frame: Frame, session: SessionRecord | None) -> Snapshot:
        """The `snapshot` command: the frame as a JPEG in the running session's folder, recorded and
        chained as its evidence (kind snapshot, no event) before the answer, kept or deleted by retention
        like an event's snapshot. Refused without a session, or when the disk is below its floor."""
        if session is None:
            raise SessionError("no session is running: a snapshot is kept as a running session's evidence")
        if self.disk.low():
            raise OSError(f"the recordings' disk is low ({self.disk.describe()})")
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(frame.wall)) + f"-{uuid.uuid4().hex[:6]}"
        name = f"{session.id}/snapshot-{REQUESTED}{stamp}.jpg"
        sha256, size = write_jpeg(frame.image, self.root / name, self._snapshot_quality)
        media = MediaRecord(name, session.id, "snapshot", None, sha256, size, frame.wall, frame.wall, 1)
        try:
            self._writer.submit(lambda store: store.add_media(media)).result(SNAPSHOT_COMMIT_TIMEOUT_S)
        except TimeoutError:
            log.error("snapshot %s: its record waits for the store (kept in memory, retried)", name)
        return Snapshot(str(self.root / name), sha256, size, frame.width, frame.height, frame.wall)

    def _commit_media(self, media: MediaRecord) -> None:
        """Recorder thread: the file's row (and, for a snapshot, its MQTT message) committed on the store thread."""
        messages = []
        if media.kind == "snapshot" and self._topics is not None and media.event_id:
            try:
                preview = bounded_jpeg((self.root / media.name).read_bytes())
                messages.append(self._topics.snapshot_message(media.event_id, media.session_id, media.start, preview))
            except (OSError, ValueError) as exc:  # the file and its row matter more than the preview
                log.error("%s: no snapshot on MQTT: %s", media.name, exc)
        self._writer.submit(lambda store: store.add_media(media, messages)).add_done_callback(
            _report_failure(media.name))

    def _record_deletion(self, name: str, reason: str) -> None:
        # Not retried: while the database cannot be written, retention waits for its next check instead of
        # holding its thread (the database's reserve, not retention, is what gives it room).
        self._writer.submit(lambda store: store.record_deletion(name, reason), retry=False).result()

    def _purge_identity(self, session_id: str, reason: str) -> None:
        if self._writer.submit(
            lambda store: store.transact(identity_store.purge, session_id, reason, time.time()), retry=False
        ).result():
            log.info("retention deleted the identity data of session %s: %s", session_id, reason)


def _report_failure(name: str):
    def check(future: Future) -> None:
        if future.exception() is not None:
            log.error("could not record %s in the store: %s", name, future.exception())

    return check
