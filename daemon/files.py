"""Files that survive a crash or a power cut: written whole or not at all, and checked by sha256."""

from __future__ import annotations

import os
from pathlib import Path

from daemon.compat import file_digest

# A file being written; renamed to its final name only once complete (recovery and verify know it).
PARTIAL_SUFFIX = ".part"


def fsync_dir(path: Path) -> None:
    """Make a new or renamed directory entry durable (a power cut may otherwise lose the file itself)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write, fsync, then rename into place: the file exists complete or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    fsync_dir(path.parent)


def file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return file_digest(file, "sha256").hexdigest()
