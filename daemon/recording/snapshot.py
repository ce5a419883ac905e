"""Snapshots: one frame as a JPEG, written whole or not at all. Both kinds are a session's evidence (a
media row, chained, kept or deleted by retention): an event's snapshot (the recorder's) and the one the
MQTT `snapshot` command asks for (RecordingService.take_snapshot)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from daemon.files import write_durably

# The name of a snapshot a command asked for: snapshot-<REQUESTED><stamp>.jpg (an event's is
# snapshot-<event id>.jpg); recovery tells them apart by it.
REQUESTED = "request-"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The `snapshot` command's result."""

    path: str
    sha256: str
    bytes: int
    width: int
    height: int
    captured_at: float  # the frame's wall-clock time


def write_jpeg(image: np.ndarray, path: Path, quality: int) -> tuple[str, int]:
    """Encode and write durably; returns the file's sha256 and size."""
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"{path.name}: the frame could not be encoded as JPEG")
    data = jpeg.tobytes()
    write_durably(path, data)
    return hashlib.sha256(data).hexdigest(), len(data)
