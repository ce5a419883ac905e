"""Retention: which recording files are deleted, and when.

Never deleted: any file of a running session or of a session under review (`proctord review`), and an
event's evidence (clip, snapshot) that has not been synced. "Synced" means the evidence is safe
somewhere else: there is no upload target yet, so it is an explicit mark set by `proctord mark-synced
SESSION` (after an export, or by a future uploader through Store.mark_synced); until then evidence stays.

Deleted, each deletion committed to the store (the `deletions` table and the session's chain) before
the file goes, and logged:
1. by age: plain recordings (segments) older than recording_max_age_days; synced evidence older than
   evidence_max_age_days (0 = no age limit);
2. by space: while free space is below min_free_mb, plain recordings oldest first, then synced evidence
   oldest first. What cannot be freed stays, and the recorder reports itself degraded.

Identity data (identity checks, biometric: README, "Identity and privacy") goes sooner, synced or not: a
session's reference embedding, its similarity figures and its reference photo are deleted
identity.retention_days after the session ended, and with the session's evidence when that goes first. A
session under review keeps them too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import RetentionConfig
from daemon.recording.disk import DiskSpace
from daemon.store import identity as identity_store
from daemon.store.db import StoreReader, is_storage_failure
from daemon.store.records import StoredMedia

log = logging.getLogger(__name__)

DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class IdentityRetention:
    days: float | None  # identity.retention_days (None: only with the session's evidence)
    purge: Callable[[str, str], None]  # commits the deletion of a session's embedding and figures, with a reason


@dataclass(frozen=True, slots=True)
class Deletion:
    name: str
    reason: str
    bytes: int
    session_id: str
    kind: str


class Retention:
    def __init__(
        self,
        config: RetentionConfig,
        reader: StoreReader,
        record_deletion: Callable[[str, str], None],
        disk: DiskSpace,
        clock: Clock = SYSTEM_CLOCK,
        identity: IdentityRetention | None = None,
    ):
        self._config = config
        self._identity = identity
        self._reader = reader
        self._record_deletion = record_deletion  # commits the deletion; returns once it is durable
        self._disk = disk
        self._clock = clock
        self.failure: str | None = None  # why the last check failed (status page), None when it did not
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run now (the recorder found the disk low)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def run_once(self) -> list[Deletion]:
        deletable = [item for item in self._reader.live_media() if _may_delete(item)]
        # Plain recordings before evidence, oldest first within each.
        deletable.sort(key=lambda item: (item.media.kind != "segment", item.created_at))
        deletions = []
        now = self._clock.time()
        for item in deletable:
            limit_days = (
                self._config.recording_max_age_days if item.media.kind == "segment"
                else self._config.evidence_max_age_days
            )
            age_days = (now - item.created_at) / DAY_S
            if limit_days and age_days > limit_days:
                deletions.append(self._delete(item, f"older than {limit_days:g} days ({age_days:.1f})"))
        aged = {deletion.name for deletion in deletions}
        for item in deletable:
            if not self._disk.low():
                break
            if item.media.name not in aged:
                deletions.append(self._delete(item, f"disk space: {self._disk.describe()}"))
        if self._disk.low():
            log.warning("retention: still %s; the rest is unsynced evidence, under review or in use", self._disk.describe())
        if self._identity:
            evidence_gone = {d.session_id for d in deletions if d.kind != "segment"}
            deletions += self._purge_identity(now, evidence_gone, {d.name for d in deletions})
        return deletions

    def _purge_identity(self, now: float, evidence_gone: set[str], deleted: set[str]) -> list[Deletion]:
        assert self._identity is not None
        days = self._identity.days
        reasons = {session_id: "with the session's evidence" for session_id in evidence_gone}
        if days:
            expired = self._reader.read(identity_store.expired_sessions, now - days * DAY_S)
            reasons |= {session_id: f"identity data kept {days:g} days" for session_id in expired}
        photos = [
            item for item in self._reader.live_media()
            if item.media.kind == identity_store.REFERENCE_PHOTO and item.media.session_id in reasons
            and item.media.name not in deleted and not item.under_review
        ]
        deletions = [self._delete(item, reasons[item.media.session_id]) for item in photos]
        for session_id, reason in reasons.items():
            self._identity.purge(session_id, reason)
        return deletions

    def _delete(self, item: StoredMedia, reason: str) -> Deletion:
        media = item.media
        self._record_deletion(media.name, reason)  # first: a crash now leaves a recorded file, not a lost one
        (self._disk.root / media.name).unlink(missing_ok=True)
        log.info("retention deleted %s (%s, %d bytes, session %s): %s", media.name, media.kind, media.bytes,
                 media.session_id, reason)
        return Deletion(media.name, reason, media.bytes, media.session_id, media.kind)

    def check(self) -> None:
        """One check as the thread makes it: a failure is kept in `failure` (the status page shows it) and
        logged once while it repeats, not at every check."""
        try:
            self.run_once()
            self.failure = None
        except Exception as exc:
            if str(exc) != self.failure:  # a full disk is said in one line; anything else is a bug: its traceback
                log.error("retention failed: %s (logged once while it repeats); trying again at each check", exc,
                          exc_info=not is_storage_failure(exc))
            self.failure = str(exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check()
            self._wake.wait(self._config.check_interval_s)
            self._wake.clear()


def _may_delete(item: StoredMedia) -> bool:
    if item.under_review or item.session_state == "running":
        return False
    return item.media.kind == "segment" or item.synced_at is not None
