"""The alert snapshot a supervisor's console receives on MQTT: the event's JPEG, made small enough.

The recorder's snapshot is full size at recording.snapshot_quality; on MQTT it must stay small (many
kiosks, one broker, a console on a phone): scaled down to at most PREVIEW_WIDTH pixels wide, then
re-encoded at falling quality, then smaller still, until it fits MAX_SNAPSHOT_BYTES.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_SNAPSHOT_BYTES = 64 * 1024
PREVIEW_WIDTH = 640
_QUALITIES = (80, 65, 50, 35)
_MIN_WIDTH = 80


def bounded_jpeg(jpeg: bytes, limit: int = MAX_SNAPSHOT_BYTES) -> bytes:
    """`jpeg` re-encoded to at most `limit` bytes. Raises ValueError if it is not an image."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("the snapshot is not a readable image")
    width = min(PREVIEW_WIDTH, image.shape[1])
    while True:
        height = max(1, round(image.shape[0] * width / image.shape[1]))
        scaled = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA) if width != image.shape[1] else image
        for quality in _QUALITIES:
            ok, encoded = cv2.imencode(".jpg", scaled, [cv2.IMWRITE_JPEG_QUALITY, quality])
            if ok and encoded.size <= limit:
                return encoded.tobytes()
        if width <= _MIN_WIDTH:
            raise ValueError(f"the snapshot does not fit {limit} bytes even at {width} px wide")
        width = max(_MIN_WIDTH, width * 3 // 4)
