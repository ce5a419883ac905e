"""The alert snapshot on MQTT: size-bounded, committed with the snapshot file's row, published by the real
publisher to a real mosquitto, and saved by `proctord watch --save-snapshots`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from conftest import kill_process, wait_until
from mqtt_helpers import KIOSK, SITE, Kiosk

from daemon.capture.frame import Frame
from daemon.config import parse_config
from daemon.events.model import Event
from daemon.recording.service import RecordingService
from daemon.sync.alert_snapshot import MAX_SNAPSHOT_BYTES, bounded_jpeg


@pytest.fixture(scope="module")
def photo(shared):
    image = cv2.imread(str(shared / "media" / "images" / "skimage" / "astronaut.png"))
    return cv2.resize(image, (1920, 1920))


def test_a_snapshot_is_bounded_to_64_kib_even_when_it_is_pure_noise(photo):
    noise = np.random.default_rng(1).integers(0, 256, (1080, 1920, 3), np.uint8)
    for image in (photo, noise):
        big = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
        assert len(big) > MAX_SNAPSHOT_BYTES
        small = bounded_jpeg(big)
        assert len(small) <= MAX_SNAPSHOT_BYTES
        decoded = cv2.imdecode(np.frombuffer(small, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape[1] <= 640 and decoded.shape[0] / decoded.shape[1] == pytest.approx(
            image.shape[0] / image.shape[1], rel=0.02)
    with pytest.raises(ValueError, match="not a readable image"):
        bounded_jpeg(b"not a jpeg")


def test_an_alerts_snapshot_reaches_the_supervisor_and_watch_saves_it(tmp_path, mosquitto, photo):
    saved = tmp_path / "saved"
    watch = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "watch", "--broker", f"127.0.0.1:{mosquitto.port}", "--json",
         "--save-snapshots", str(saved)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    lines: list[dict] = []
    threading.Thread(target=lambda: lines.extend(json.loads(line) for line in watch.stdout), daemon=True).start()
    kiosk = Kiosk(tmp_path, mosquitto.port)
    try:
        # The watch is subscribed once it has the kiosk's status (snapshots are not retained).
        wait_until(lambda: any(r["type"] == "status" for r in list(lines)), 20, "the watch subscribed")
        config = parse_config(f'[paths]\ndata_dir = "{tmp_path}"\n[kiosk]\nsite = "{SITE}"\nname = "{KIOSK}"\n')
        service = RecordingService(config, kiosk.writer, kiosk.reader, topics=kiosk.topics)
        service.start()
        recorder = service.recorder
        recorder.start_session(kiosk.session.id)
        now = time.time()
        for i in range(3):
            recorder.offer(Frame(photo, seq=i, mono=i / 15, wall=now + i / 15))
        event = Event("ev-snap-1", kiosk.session.id, "phone", "high", now, None, 0.9, {})
        recorder.event_started(event)
        line = wait_until(lambda: next((r for r in list(lines) if r["type"] == "snapshot"), None), 30,
                          "the snapshot line from watch")
        service.stop()
    finally:
        kiosk.close()
        kill_process(watch)
    assert line["alert_id"] == "ev-snap-1:start" and line["event_id"] == "ev-snap-1"
    assert "jpeg_base64" not in line  # saved instead of printed
    jpeg = (saved / f"{SITE}_{KIOSK}_ev-snap-1.jpg").read_bytes()
    assert line["saved_to"] == str(saved / f"{SITE}_{KIOSK}_ev-snap-1.jpg") and len(jpeg) == line["size"]
    assert len(jpeg) <= MAX_SNAPSHOT_BYTES and cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR) is not None
    full = tmp_path / "recordings" / kiosk.session.id / "snapshot-ev-snap-1.jpg"
    assert full.stat().st_size > len(jpeg)  # the full-size evidence stays on the kiosk (and goes to S3)
