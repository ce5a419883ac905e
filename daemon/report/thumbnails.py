"""The events' snapshots, small, for the printable reports (HTML and PDF): event id -> JPEG bytes.

Read from the recordings directory through the store's media rows (no other path reaches the disk); a
snapshot retention has deleted is simply left out."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import cv2
import numpy as np

from daemon.store.db import StoreReader

log = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 320  # pixels: readable in a table row, about 15 kB a picture
THUMBNAIL_QUALITY = 75

Thumbnails = dict[str, bytes]


def load_thumbnails(reader: StoreReader, recordings_dir: Path, session_id: str) -> Thumbnails:
    thumbnails = {}
    for media in reader.media(session_id):
        if media.kind != "snapshot" or media.event_id is None:
            continue
        try:
            data = np.frombuffer((recordings_dir / media.name).read_bytes(), np.uint8)
        except FileNotFoundError:  # deleted by retention
            continue
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if image is None:
            log.warning("%s: not a picture; left out of the report", media.name)
            continue
        scale = min(1.0, THUMBNAIL_WIDTH / image.shape[1])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
        thumbnails[media.event_id] = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY])[1].tobytes()
    return thumbnails


def data_uri(jpeg: bytes) -> str:
    """A picture the HTML report carries inside itself (it stays one self-contained file)."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
