"""The recordings' file system: free space against the configured floor."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path


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
