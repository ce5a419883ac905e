"""The `snapshot` command's picture: the newest frame as a JPEG under <data_dir>/snapshots.

Kept minimal on purpose (recordings and evidence are the evidence module's job): one file, written
under a temporary name and renamed, so a crash never leaves half a picture, plus its sha256.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2

from daemon.capture.frame import Frame
from daemon.files import write_durably

JPEG_QUALITY = 90


@dataclass(frozen=True, slots=True)
class Snapshot:
    path: str
    sha256: str
    bytes: int
    width: int
    height: int
    captured_at: float  # the frame's wall-clock time


def save_snapshot(frame: Frame, directory: Path) -> Snapshot:
    ok, encoded = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError("the frame could not be encoded as JPEG")
    data = encoded.tobytes()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(frame.wall))
    path = directory / f"{stamp}-{uuid.uuid4().hex[:6]}.jpg"
    write_durably(path, data)
    return Snapshot(str(path), hashlib.sha256(data).hexdigest(), len(data), frame.width, frame.height, frame.wall)
