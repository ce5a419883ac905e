"""The recordings' file system: free space against the configured floor, and durable writes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from daemon.store.records import PARTIAL_SUFFIX


def _free_bytes(path: Path) -> int:
    path.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(path).free


class DiskSpace:
    def __init__(self, root: Path, min_free_bytes: int, free_bytes: Callable[[Path], int] = _free_bytes):
        self.root = root
        self.min_free_bytes = min_free_bytes
        self._free_bytes = free_bytes  # injectable: tests simulate a quota

    def free(self) -> int:
        return self._free_bytes(self.root)

    def low(self) -> bool:
        return self.free() < self.min_free_bytes

    def describe(self) -> str:
        return f"{self.free() / 1e6:.0f} MB free, below the {self.min_free_bytes / 1e6:.0f} MB floor"


def fsync_dir(path: Path) -> None:
    """Make a new or renamed directory entry durable (a power cut may otherwise lose the file itself)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Write, fsync, then rename into place: the file exists complete or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    with partial.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    fsync_dir(path.parent)
