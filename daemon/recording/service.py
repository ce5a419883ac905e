"""Recording, retention and crash recovery wired to the store: the one object the daemon holds."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import asdict

from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import Config
from daemon.recording.disk import DiskSpace
from daemon.recording.recorder import Recorder, confirmation_delay_s
from daemon.recording.recovery import recover_session_files
from daemon.recording.retention import Retention
from daemon.store.db import Store, StoreReader
from daemon.store.records import MediaRecord
from daemon.store.writer import StoreWriter
from daemon.sync.alert_snapshot import bounded_jpeg
from daemon.sync.contract import Topics

log = logging.getLogger(__name__)


class RecordingService:
    def __init__(self, config: Config, writer: StoreWriter, reader: StoreReader, clock: Clock = SYSTEM_CLOCK,
                 disk: DiskSpace | None = None, topics: Topics | None = None):
        self._writer = writer
        self._topics = topics  # set: each event's snapshot also goes on MQTT, size-bounded
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

    def status(self) -> dict:
        """For the status page: the recorder's state (off, idle, recording, degraded) and the free space."""
        recorder = asdict(self.recorder.status) if self.recorder else {"state": "off"}
        return recorder | {"free_mb": round(self.disk.free() / 1e6), "min_free_mb": round(self.disk.min_free_bytes / 1e6)}

    def _commit_media(self, media: MediaRecord) -> None:
        """Recorder thread: the file's row (and, for a snapshot, its MQTT message) committed on the store thread."""
        messages = []
        if media.kind == "snapshot" and self._topics is not None and media.event_id:
            try:
                preview = bounded_jpeg((self.root / media.name).read_bytes())
                messages.append(self._topics.snapshot_message(media.event_id, media.session_id, media.start, preview))
            except (OSError, ValueError) as exc:  # the file and its row matter more than the preview
                log.error("%s: no snapshot on MQTT: %s", media.name, exc)
        self._writer.submit(self._writer.store.add_media, media, messages).add_done_callback(
            _report_failure(media.name))

    def _record_deletion(self, name: str, reason: str) -> None:
        self._writer.submit(self._writer.store.record_deletion, name, reason).result()


def _report_failure(name: str):
    def check(future: Future) -> None:
        if future.exception() is not None:
            log.error("could not record %s in the store: %s", name, future.exception())

    return check
