"""Recording, retention and crash recovery wired to the store: the daemon's "recording" part."""

from __future__ import annotations

import logging
from concurrent.futures import Future

from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import Config
from daemon.parts import Figure, PartStatus
from daemon.recording.disk import DiskSpace
from daemon.recording.recorder import Recorder, confirmation_delay_s
from daemon.recording.recovery import recover_session_files
from daemon.recording.retention import Retention
from daemon.store.db import Store, StoreReader
from daemon.store.records import MediaRecord
from daemon.store.writer import StoreWriter

log = logging.getLogger(__name__)


class RecordingService:
    name = "recording"

    def __init__(self, config: Config, writer: StoreWriter, reader: StoreReader, clock: Clock = SYSTEM_CLOCK,
                 disk: DiskSpace | None = None):
        self._writer = writer
        self.root = config.recordings_dir
        self.disk = disk or DiskSpace(self.root, config.retention.min_free_mb * 1_000_000)
        self.retention = Retention(config.retention, reader, self._record_deletion, self.disk, clock)
        self.recorder = (
            Recorder(config.recording, self.root, confirmation_delay_s(config.rules), self._commit_media, self.disk,
                     on_low_space=self.retention.wake, clock=clock)
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
        return PartStatus(self.name, "degraded" if recorder.state == "degraded" else "ok", recorder.reason, (
            Figure("recorder", "Recorder", recorder.state, kind="info"),
            Figure("frames_recorded", "Frames recorded", recorder.frames_recorded, kind="counter",
                   help="Frames written to recordings"),
            Figure("frames_dropped", "Frames not recorded", recorder.frames_dropped, kind="counter",
                   help="Frames the encoder fell behind on"),
            Figure("files_written", "Files written", recorder.files_written, kind="counter",
                   help="Segments, clips and snapshots written"),
            Figure("bytes_written", "Written", recorder.bytes_written, "bytes", kind="counter",
                   help="Bytes of segments, clips and snapshots written"),
            *space,
        ))

    def _commit_media(self, media: MediaRecord) -> None:
        self._writer.submit(self._writer.store.add_media, media).add_done_callback(_report_failure(media.name))

    def _record_deletion(self, name: str, reason: str) -> None:
        self._writer.submit(self._writer.store.record_deletion, name, reason).result()


def _report_failure(name: str):
    def check(future: Future) -> None:
        if future.exception() is not None:
            log.error("could not record %s in the store: %s", name, future.exception())

    return check
