"""The store's one writer: every write runs on the store thread, in order, as one transaction.

`submit(write)` is the only way to the Store: `write(store)` runs on the store thread inside one
transaction (so a write made of several Store calls commits whole or not at all), and its Future
resolves when it has committed. Disk latency never lands on the caller's thread.

A write that fails because the disk is full or failing is not dropped: it stays at the head of the
queue, in memory, and is tried again every `retry_s` (later writes wait behind it, so the order of
changes holds), logged as an ERROR, and shown in `status()`. Before the first retry the disk reserve
(DiskReserve) is given up, so the database gets the space the recordings were kept out of. A write
that fails for any other reason (a constraint, a bug) would fail the same way again: its Future gets
the error at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from daemon.config import Config
from daemon.parts import Figure, PartStatus
from daemon.store.db import Store, is_storage_failure
from daemon.store.records import StoreSummary

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_S = 2.0  # how often a write the disk refused is tried again


class StoreUnavailable(OSError):
    """A write that cannot wait (a session start) while the database cannot be written: the storage
    failed, so callers answer it as they answer any OSError ("could not store"), not as a refusal."""


class DiskReserve:
    """Space set aside for the database: a preallocated file, deleted when the database needs the room
    and made again once the disk has space. The recorder's free-space floor sees the disk without it,
    so recordings stop before the database runs out."""

    def __init__(self, path: Path, size_bytes: int, free_bytes: Callable[[Path], int] | None = None):
        self.path = path
        self.size_bytes = size_bytes
        self._free_bytes = free_bytes or (lambda p: shutil.disk_usage(p).free)

    @property
    def held(self) -> bool:
        return self.path.is_file()

    def ensure(self) -> bool:
        """Make the reserve if it is missing and the disk has twice its size free. Returns whether held."""
        if self.held or not self.size_bytes:
            return self.held
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._free_bytes(self.path.parent) < 2 * self.size_bytes:
            return False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size_bytes)  # real blocks, not a sparse file
            finally:
                os.close(fd)
        except OSError as exc:
            self.path.unlink(missing_ok=True)
            log.warning("could not set %d MB aside for the database: %s", self.size_bytes // 1_000_000, exc)
            return False
        return True

    def release(self) -> bool:
        """Give the space to the database. Returns whether there was a reserve to give."""
        if not self.held:
            return False
        self.path.unlink(missing_ok=True)
        log.error("the disk is full: released the %d MB database reserve %s", self.size_bytes // 1_000_000, self.path)
        return True


@dataclass(slots=True)
class _Write:
    write: Callable[[Store], object]
    future: Future
    retry: bool


class StoreWriter:
    """The store thread. `open_store` opens the database; it runs here first, and where opening fails for
    lack of space (a full disk at start-up) it is retried on the store thread like a write, the daemon
    meanwhile up and degraded. A database that is not usable (DatabaseUnusable) raises at once."""

    name = "store"

    def __init__(self, open_store: Store | Callable[[], Store], reserve: DiskReserve | None = None,
                 retry_s: float = RETRY_S):
        self._reserve = reserve
        self._retry_s = retry_s
        self._lock = threading.Condition()
        self._queue: deque[_Write] = deque()
        self._closing = False
        self._failing: str | None = None  # why the write at the head of the queue failed (None: all well)
        self._failures = 0
        self._store: Store | None = None
        if reserve is not None:
            reserve.ensure()
        if isinstance(open_store, Store):
            self._store = open_store
        else:
            self._open = open_store
            try:
                self._store = open_store()
            except Exception as exc:
                if not is_storage_failure(exc):
                    raise
                self._failed(exc, "opening the database")  # the store thread opens it, the reserve given first
        self._thread = threading.Thread(target=self._run, name="store", daemon=True)
        self._thread.start()

    @classmethod
    def for_config(cls, config: Config) -> StoreWriter:
        """The daemon's writer: its database, and the reserve of retention.database_reserve_mb beside it."""
        path = config.database_path
        reserve = DiskReserve(path.with_name(path.name + ".reserve"), config.retention.database_reserve_mb * 1_000_000)
        return cls(lambda: Store(path, config.kiosk.name), reserve)

    def submit(self, write: Callable[[Store], T], retry: bool = True) -> Future[T]:
        """Queue `write(store)` behind earlier writes; it runs as one transaction on the store thread.

        `retry=False` for a write a person waits on (a session start): while the database cannot be
        written it fails at once with StoreUnavailable instead of waiting for space."""
        future: Future[T] = Future()
        with self._lock:
            if self._closing:
                raise RuntimeError("the store writer is closed")
            if not retry and self._failing:
                future.set_exception(StoreUnavailable(f"the database cannot be written now: {self._failing}"))
                return future
            self._queue.append(_Write(write, future, retry))
            self._lock.notify()
        return future

    def status(self) -> PartStatus:
        with self._lock:
            pending, failing, failures = len(self._queue), self._failing, self._failures
        figures = (
            Figure("pending_writes", "Writes waiting", pending, help="store writes queued, not yet committed"),
            Figure("write_failures", "Failed write attempts", failures, kind="counter",
                   help="store writes the disk refused (each is kept in memory and tried again)"),
            Figure("reserve_held", "Database reserve held", bool(self._reserve and self._reserve.held), kind="info"),
        )
        if failing:
            return PartStatus(self.name, "degraded", f"database writes failing, {pending} kept in memory: {failing}",
                              figures)
        if self._reserve is not None and self._reserve.size_bytes and not self._reserve.held:
            return PartStatus(self.name, "degraded", "the disk is nearly full: no space is set aside for the"
                              " database (retention.database_reserve_mb, twice that must be free)", figures)
        return PartStatus(self.name, "ok", None, figures)

    def summary(self) -> StoreSummary:
        """What the MQTT status and the status page say about the store."""
        status = self.status()
        return StoreSummary(status.state, status.reason, status.figure("pending_writes"), status.figure("write_failures"))

    def close(self) -> None:
        """Finish every queued write (a failing one is tried once more, then reported lost), then close."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join()
        if self._store is not None:
            self._store.close()

    # --- the store thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    self._lock.wait()
                if not self._queue:
                    return
                item = self._queue[0]
            if item.future.done() or (not item.future.running() and not item.future.set_running_or_notify_cancel()):
                self._pop()
                continue
            try:
                if self._store is None:
                    self._store = self._open()
                store = self._store
                with store.atomic():
                    result = item.write(store)
            except Exception as exc:  # noqa: BLE001 - retried, or handed back through its Future
                if is_storage_failure(exc) and item.retry:
                    if self._reserve is not None and self._reserve.release():
                        continue  # at once: the reserve is there for this
                    self._failed(exc, "a write")
                    if self._closing:
                        self._give_up()
                        return
                    with self._lock:
                        self._lock.wait(self._retry_s)  # close() wakes it for a last try
                    continue
                self._pop()
                if is_storage_failure(exc):
                    self._failed(exc, "a write that cannot wait")
                    exc = StoreUnavailable(f"the database cannot be written now: {exc}")
                item.future.set_exception(exc)
            else:
                self._pop()
                self._recovered()
                item.future.set_result(result)

    def _pop(self) -> None:
        with self._lock:
            self._queue.popleft()

    def _failed(self, exc: BaseException, what: str) -> None:
        with self._lock:
            first = self._failing is None
            self._failing = str(exc)
            self._failures += 1
            # Writes that cannot wait, queued behind the one that failed, are answered now.
            hurried = [item for item in list(self._queue)[1:] if not item.retry]
            for item in hurried:
                self._queue.remove(item)
            pending = len(self._queue)
        for item in hurried:
            item.future.set_exception(StoreUnavailable(f"the database cannot be written now: {exc}"))
        if first:
            log.error("store: %s failed: %s; %d writes kept in memory and retried every %g s (nothing is dropped)",
                      what, exc, pending, self._retry_s)

    def _recovered(self) -> None:
        if self._failing is None:
            if self._reserve is not None and not self._reserve.held:
                self._reserve.ensure()
            return
        with self._lock:
            self._failing = None
            pending = len(self._queue)
        log.warning("store: writes succeed again; %d still queued", pending)

    def _give_up(self) -> None:
        with self._lock:
            lost, self._queue = list(self._queue), deque()
        log.error("store: shutting down with %d writes the disk refused: they are lost", len(lost))
        for item in lost:
            item.future.set_exception(StoreUnavailable(f"not committed before shutdown: {self._failing}"))
