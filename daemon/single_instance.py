"""One daemon per data directory: a second `proctord run` on the same database and recordings would write
the same sessions and files. The first holds an fcntl lock on <data_dir>/proctord.lock (released by the
kernel when the process ends, however it ends); the second is refused with the first one's pid."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from daemon.errors import UserError

LOCK_FILE = "proctord.lock"


class AlreadyRunning(UserError):
    """Another daemon holds this data directory."""


class DataDirLock:
    """Held from `acquire()` until `release()` or the end of the process."""

    def __init__(self, data_dir: Path):
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises AlreadyRunning naming the holder's pid. A data directory that cannot be made (or a full one
        without room for the lock file) is left to the start-up checks and the store, which say why."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another proctord (pid {holder}) is already running on the data directory {self.path.parent}; "
                "stop it first (e.g. `sudo systemctl stop proctord`), or give this one another paths.data_dir"
            ) from None
        self._fd = fd
        # The file is never removed (removing a lock file races with the next daemon); its content is the pid,
        # for the message a second daemon gives. A full disk leaves it unwritten: the lock holds all the same.
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    def __enter__(self) -> None:
        self.acquire()

    def __exit__(self, *_) -> None:
        self.release()
