"""The uploader: evidence from the kiosk's queue to an S3-compatible object store, on its own thread.

Store-and-forward: the queue (sync/upload_queue.py) is in the database, so files recorded while the
store is away, for hours or days, go up when it is back, oldest evidence first. Each file goes to
`<prefix>/<site>/<kiosk>/<session>/<file>`, with its sha256 in the object's metadata; it counts as synced
only once a HEAD shows the store holding that size and sha256. Then, in one transaction, it leaves the
queue, its media row is marked synced (so retention may free it) and its announcement on .../evidence is
queued in the outbox.

A file above `part_mb` goes up in parts; the upload id and each confirmed part are committed, so a
kill -9 costs at most the part in flight. A key that already holds the file (a crash after the store
completed it) is not sent again.

When the store is unreachable, refuses the credentials or has no such bucket, the uploader waits
(doubling, with jitter, up to retry_max_s) and says why in its status; nothing is dropped. At session
end it writes the reports (JSON, HTML, PDF) and a manifest with the session's chain head, and queues them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import random
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import Config, RulesConfig, UploadConfig
from daemon.credentials import read_credential
from daemon.files import file_sha256, write_durably
from daemon.parts import Figure, PartStatus
from daemon.report.builder import load_report
from daemon.report.files import REPORT_FILES
from daemon.report.thumbnails import load_thumbnails
from daemon.store.db import StoreReader
from daemon.store.records import SessionRecord
from daemon.store.writer import StoreWriter
from daemon.sync import upload_queue as queue
from daemon.sync.contract import UPLOAD_OFF, Topics, UploadedFile, UploadSummary
from daemon.sync.s3 import ObjectStore, StoreError, StoreSettings, Throttle

log = logging.getLogger(__name__)

# How often the queue is looked at while idle: new media is queued by the store's trigger, not announced.
IDLE_CHECK_S = 2.0
# The report formats that go up at session end (the CSV is derived from the JSON).
UPLOADED_REPORTS = ("json", "html", "pdf")
MANIFEST_NAME = "manifest.json"
MIB = 1024 * 1024

# (function, *args) -> the future of its commit: runs function(connection, *args) in one store transaction.
Write = Callable[..., Future]


@dataclass(frozen=True, slots=True)
class _Place:
    """Where files are and where they go."""

    recordings_dir: Path
    reports_dir: Path
    key_root: str  # <prefix>/<site>/<kiosk>

    def path(self, upload: queue.Upload) -> Path:
        return (self.recordings_dir if upload.origin == "media" else self.reports_dir) / upload.name

    def key(self, name: str) -> str:
        return f"{self.key_root}/{name}"


class _Stopped(Exception):
    pass


class Uploader:
    """A Part and a SessionListener (daemon/parts.py)."""

    name = "uploader"

    def __init__(
        self,
        config: UploadConfig,
        store: ObjectStore | None,
        place: _Place,
        topics: Topics,
        write: Write,
        database: Path,
        rules: RulesConfig,
        on_outbox: Callable[[], None] = lambda: None,
        clock: Clock = SYSTEM_CLOCK,
        rng: random.Random | None = None,
    ):
        self._config = config
        self._store = store  # None: uploads are off
        self._place = place
        self._topics = topics
        self._write = write
        self._reader = StoreReader(database)
        self._rules = rules
        self._on_outbox = on_outbox  # an announcement was queued
        self._clock = clock
        self._random = rng or random.Random()
        self._part_bytes = config.part_mb * MIB
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uploader", daemon=True)
        self._store_problem: str | None = None  # why nothing goes up now (offline, credentials, bucket)
        self._last_error: str | None = None
        self._failures = 0  # in a row, for the backoff
        self._reports_retry_at = 0.0
        self.files_uploaded = 0
        self.bytes_uploaded = 0

    @classmethod
    def from_config(
        cls, config: Config, writer: StoreWriter, on_outbox: Callable[[], None] = lambda: None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Uploader:
        """Raises CredentialError (naming upload.secret_key_file) when the secret cannot be read."""
        upload = config.upload
        store = None
        if upload.enabled:
            secret = read_credential("upload.secret_key_file", upload.secret_key_file)
            settings = StoreSettings(upload.endpoint, upload.bucket, upload.access_key, secret, upload.secure,
                                     upload.region or None)
            store = ObjectStore(settings, Throttle(upload.max_kbytes_per_s * 1000, clock))
        place = _Place(config.recordings_dir, config.data_dir / "reports",
                       f"{upload.prefix}/{config.kiosk.site}/{config.kiosk.name}")

        def write(function, *args) -> Future:
            return writer.submit(lambda store: store.transact(function, *args))

        return cls(upload, store, place, Topics.from_config(config), write, config.database_path, config.rules,
                   on_outbox, clock)

    # --- Part ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._store is None:
            # Off: nothing more is queued, and what a former configuration queued no longer holds retention back.
            # Not waited for: on a full disk the write waits in the store's queue, and the start must not.
            self._write(queue.configure, (), self._clock.time())
            return
        log.info("uploading %s to %s", ", ".join(self._config.files), self._store.address)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def summary(self) -> UploadSummary:
        """What the retained MQTT status says of the uploads; the status card shows the same figures."""
        if self._store is None:
            return UPLOAD_OFF
        figures = self._reader.read(queue.figures)
        state, reason = "ok", None
        if self._store_problem:
            state, reason = "degraded", self._store_problem
        elif figures.missing:
            state, reason = "degraded", f"{figures.missing} queued files are missing or changed on the local disk"
        return UploadSummary(state, reason, figures.backlog, figures.bytes_pending, figures.missing,
                             figures.last_upload_at, self._last_error)

    def status(self) -> PartStatus:
        summary = self.summary()
        if self._store is None:
            return PartStatus(self.name, summary.state, summary.reason)
        return PartStatus(self.name, summary.state, summary.reason, (
            Figure("backlog", "Files waiting", summary.backlog, help="Files queued for the object store"),
            Figure("bytes_pending", "Waiting", summary.bytes_pending, "bytes", help="Bytes queued for the object store"),
            Figure("last_upload", "Last upload",
                   None if summary.last_upload_at is None else max(0.0, self._clock.time() - summary.last_upload_at),
                   "s ago", help="Seconds since the store last confirmed a file"),
            # While the store is away the problem line says it already.
            Figure("last_error", "Last error", None if summary.last_error == summary.reason else summary.last_error,
                   kind="info"),
            Figure("missing", "Files missing locally", summary.missing,
                   help="Queued files gone or changed on the local disk"),
            Figure("uploaded_files", "Files uploaded", self.files_uploaded, kind="counter",
                   help="Files confirmed by the store since start"),
            Figure("uploaded_bytes", "Uploaded", self.bytes_uploaded, "bytes", kind="counter",
                   help="Bytes confirmed by the store since start"),
        ))

    # --- SessionListener ----------------------------------------------------------------------------------

    def session_started(self, session: SessionRecord) -> None:
        pass

    def session_stopped(self, session: SessionRecord) -> None:
        self._reports_retry_at = 0.0
        self._wake.set()  # its reports and manifest are written and queued on the uploader's thread

    def wake(self) -> None:
        self._wake.set()

    # --- the uploader thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        media_kinds = tuple(kind for kind in self._config.files if kind in queue.MEDIA_KINDS)
        configured = False
        while not self._stop.is_set():
            try:
                if not configured:
                    backlog = self._commit(queue.configure, media_kinds, self._clock.time())
                    configured = True
                    if backlog:
                        log.info("%d files recorded earlier are queued for upload", backlog)
                worked = self._step()
                self._failures = 0
                wait = 0.0 if worked else IDLE_CHECK_S
            except _Stopped:
                return
            except StoreError as exc:
                wait = self._store_failed(exc)
            except Exception as exc:  # a bug or a local failure: said, and tried again later
                log.exception("uploader failed; trying again later")
                self._last_error = f"{type(exc).__name__}: {exc}"
                wait = self._backoff()
            if wait:
                self._wake.wait(wait)
                self._wake.clear()

    def _step(self) -> bool:
        """Do the next piece of work; False when there was none."""
        if "report" in self._config.files and self._clock.monotonic() >= self._reports_retry_at:
            session_id = self._reader.read(queue.session_needing_reports)
            if session_id is not None:
                self._queue_reports(session_id)
                return True
        due = self._reader.read(queue.due, self._clock.time(), 1)
        if not due:
            return False
        self._upload(due[0])
        return True

    def _store_failed(self, exc: StoreError) -> float:
        wait = self._backoff()
        problem = str(exc)
        if problem != self._store_problem:
            log.warning("object store %s: %s; files stay queued, next try in %.0f s", self._store.address, problem, wait)
        self._store_problem = self._last_error = problem
        return wait

    def _backoff(self) -> float:
        """Doubling from retry_min_s up to retry_max_s, each wait drawn from its upper half (jitter), so a
        fleet that lost the store together does not come back together."""
        self._failures += 1
        ceiling = min(self._config.retry_max_s, self._config.retry_min_s * 2 ** (self._failures - 1))
        return self._random.uniform(ceiling / 2, ceiling)

    # --- one file -----------------------------------------------------------------------------------------

    def _upload(self, upload: queue.Upload) -> None:
        path = self._place.path(upload)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = None
        if size != upload.bytes:
            self._file_failed(upload, f"{path} is {'gone' if size is None else f'{size} bytes, not {upload.bytes}'}",
                              state="missing")
            return
        key = upload.key or self._place.key(upload.name)
        if upload.key is None:
            self._commit(queue.set_key, upload.id, key)
        try:
            self._send(upload, key, path)
        except StoreError as exc:
            if exc.kind not in ("refused", "missing"):
                raise  # the store as a whole: the uploader waits
            self._file_failed(upload, str(exc))  # this file only: the others go on
            return

    def _send(self, upload: queue.Upload, key: str, path: Path) -> None:
        if not self._holds(key, upload):  # else a crash came after the store completed it: not sent again
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if upload.bytes <= self._part_bytes:
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != upload.sha256:
                    self._file_failed(upload, f"{path} changed since it was recorded (sha256)", state="missing")
                    return
                self._store.put(key, data, upload.sha256, content_type)
            elif not self._send_parts(upload, key, path, content_type):
                return
            if not self._holds(key, upload):
                self._file_failed(upload, f"after the upload, {key} does not hold sha256 {upload.sha256[:12]}…")
                return
        self._synced(upload, key)

    def _synced(self, upload: queue.Upload, key: str) -> None:
        announcement = self._topics.evidence_message(UploadedFile(
            upload.session_id, upload.event_id, upload.kind, self._store.settings.bucket, key, upload.bytes,
            upload.sha256,
        ))
        self._commit(queue.synced, upload, self._clock.time(), announcement)
        self._on_outbox()
        self.files_uploaded += 1
        self.bytes_uploaded += upload.bytes
        self._store_problem = None
        log.info("uploaded %s (%d bytes) to %s", upload.name, upload.bytes, key)

    def _holds(self, key: str, upload: queue.Upload) -> bool:
        stored = self._store.head(key)
        return stored is not None and stored.size == upload.bytes and stored.sha256 == upload.sha256

    def _send_parts(self, upload: queue.Upload, key: str, path: Path, content_type: str) -> bool:
        """Multipart, resuming at the first part the store has not confirmed. False: the file is not fit to send."""
        upload_id = upload.upload_id
        if upload_id is None:
            if file_sha256(path) != upload.sha256:
                self._file_failed(upload, f"{path} changed since it was recorded (sha256)", state="missing")
                return False
            upload_id = self._store.start_multipart(key, upload.sha256, content_type)
            self._commit(queue.start_multipart, upload.id, upload_id)
        done = self._reader.read(queue.parts, upload.id)
        count = -(-upload.bytes // self._part_bytes)
        try:
            with path.open("rb") as file:
                for number in range(1, count + 1):
                    if number in done:
                        continue
                    if self._stop.is_set():
                        raise _Stopped
                    file.seek((number - 1) * self._part_bytes)
                    data = file.read(self._part_bytes)
                    log.debug("sending part %d/%d of %s (%d bytes)", number, count, key, len(data))
                    etag = self._store.upload_part(key, upload_id, number, data)
                    self._commit(queue.add_part, upload.id, number, etag, len(data))
                    done[number] = (etag, len(data))
            self._store.complete_multipart(key, upload_id, sorted((n, etag) for n, (etag, _) in done.items()))
        except StoreError as exc:
            if exc.kind != "upload_gone":
                raise
            # The store forgot the upload (restarted, or expired it): start again from the first part.
            log.warning("%s: %s; sending it again from the start", key, exc)
            self._commit(queue.start_multipart, upload.id, None)
            return False
        return True

    def _file_failed(self, upload: queue.Upload, error: str, state: str = "queued") -> None:
        retry_at = self._clock.time() + min(self._config.retry_max_s, self._config.retry_min_s * 2 ** upload.attempts)
        log.error("upload of %s: %s", upload.name, error)
        self._last_error = error
        self._commit(queue.failed, upload.id, error, retry_at, state)

    # --- session end ------------------------------------------------------------------------------------

    def _queue_reports(self, session_id: str) -> None:
        """Write the session's reports and manifest under the reports directory and queue them."""
        report = load_report(self._reader, session_id, self._rules)
        folder = self._place.reports_dir / session_id
        files = []
        try:
            thumbnails = load_thumbnails(self._reader, self._place.recordings_dir, session_id)
            for kind in UPLOADED_REPORTS:
                name, render = REPORT_FILES[kind]
                files.append(self._report_file(folder / name, session_id, "report", render(report, thumbnails)))
            manifest = {
                "session_id": session_id, "site": self._topics.site, "kiosk": self._topics.kiosk,
                "evidence_chain": self._reader.read(queue.chain_head, session_id),
                "media": [media | {"key": self._place.key(media["name"]) if media["kind"] in self._config.files else None}
                          for media in self._reader.read(queue.session_files, session_id)],
                "reports": [{"name": f.name, "sha256": f.sha256, "bytes": f.bytes,
                             "key": self._place.key(f.name)} for f in files],
            }
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            files.append(self._report_file(folder / MANIFEST_NAME, session_id, "manifest", data))
        except OSError as exc:  # a full disk: the reports are written again later, the evidence goes on
            self._last_error = f"cannot write the reports of {session_id}: {exc.strerror or exc}"
            log.error("%s; trying again later", self._last_error)
            self._reports_retry_at = self._clock.monotonic() + self._config.retry_max_s
            return
        self._commit(queue.enqueue_reports, files, self._clock.time())

    def _report_file(self, path: Path, session_id: str, kind: str, data: bytes) -> queue.ReportFile:
        write_durably(path, data)
        name = path.relative_to(self._place.reports_dir).as_posix()
        return queue.ReportFile(name, session_id, kind, len(data), hashlib.sha256(data).hexdigest())

    # --- the database ---------------------------------------------------------------------------------

    def _commit(self, function, *args):
        return self._write(function, *args).result()

