"""A kiosk with a finished session to review, made of the real parts on a synthetic source (no real person):
the real recorder writes the session's segments, clips and snapshots from drawn frames, the real rules
raise flags from tests/synthetic.py's scenes, the real store chains it all, and the real web server
(waitress) serves it on a loopback port.

The drawn frames show the session time in big digits, so a screenshot of the player shows where it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from synthetic import FPS, face, mono, scene, wall
from werkzeug.security import generate_password_hash

from daemon.capture.frame import Frame
from daemon.config import Config, WebConfig
from daemon.events.rules import Instant
from daemon.parts import PartStatus
from daemon.recording.service import RecordingService
from daemon.session import SessionController
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo
from daemon.store.writer import StoreWriter
from daemon.sync.contract import Topics
from webui.app import WebBackend, create_app
from webui.server import WebServer

PASSWORD = "exam-board-reviewer"
SEGMENT_S = 4.0
# (seconds, faces in view): a candidate, then an empty chair, then a second face, then the candidate.
SCRIPT = [(6.0, 1), (4.0, 0), (6.0, 1), (4.0, 2), (4.0, 1)]


def picture(i: int) -> np.ndarray:
    """Frame i of the synthetic camera: a gradient, a moving disc and the session time, large."""
    t = i / FPS
    image = np.zeros((360, 480, 3), np.uint8)
    image[:] = (60 + (np.arange(480) // 4) % 80).astype(np.uint8)[None, :, None]
    x = int(240 + 180 * np.sin(t))
    cv2.circle(image, (x, 250), 40, (40, 160, 230), -1)
    cv2.putText(image, f"t = {t:5.2f} s", (40, 120), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (255, 255, 255), 4)
    cv2.putText(image, "synthetic source", (40, 330), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (230, 230, 230), 2)
    return image


@dataclass
class ReviewKiosk:
    url: str
    session_id: str
    reader: StoreReader
    close: object  # () -> None


def review_kiosk(tmp_path: Path, port: int) -> ReviewKiosk:
    """Record SCRIPT as one session, stop it, and serve the page on `port` (log in with PASSWORD)."""
    config = Config.model_validate({
        "paths": {"data_dir": str(tmp_path / "data")},
        "recording": {"segment_s": SEGMENT_S, "fps": FPS, "keyframe_interval_s": 1.0, "pre_roll_s": 2.0,
                      "post_roll_s": 1.5, "queue_frames": 600},
        "retention": {"min_free_mb": 0, "database_reserve_mb": 0},
    })
    writer = StoreWriter(Store(config.database_path, "kiosk-7"))
    reader = StoreReader(config.database_path)
    recording = RecordingService(config, writer, reader)
    recording.start()
    sessions = SessionController(config.rules, writer, Topics.from_config(config), recorder=recording.recorder)
    session = sessions.start(CandidateInfo("Sam Synthetic", "c-007", "algebra-2"), Instant(mono(0), wall(0)))
    i = 0
    for seconds, faces in SCRIPT:
        for _ in range(round(seconds * FPS)):
            in_view = (face(),) + ((face(yaw=5.0),) if faces == 2 else ()) if faces else ()
            recording.recorder.offer(Frame(picture(i), seq=i, mono=mono(i), wall=wall(i)))
            sessions.observe(scene(i, faces=in_view))
            i += 1
    sessions.stop()
    writer.submit(lambda store: None).result()  # everything committed
    backend = WebBackend(
        status=lambda: None, reader=reader, rules=config.rules,
        start_session=lambda info: sessions.start(info, Instant(mono(i), wall(i))), stop_session=sessions.stop,
        open_events=lambda: sessions.open_events,
        record_review=lambda entries: writer.submit(
            lambda store: [store.add_review(entry) for entry in entries], retry=False).result(),
        latest_frame=lambda: None, camera=lambda: PartStatus("capture", "off", "a review kiosk has no camera"),
        data_dir=config.data_dir, recordings_dir=config.recordings_dir,
    )
    server = WebServer("127.0.0.1", port, create_app(backend, WebConfig(password_hash=generate_password_hash(
        PASSWORD, method="pbkdf2:sha256:1000"))))
    server.start()

    def close() -> None:
        server.stop()
        recording.stop()
        writer.close()

    return ReviewKiosk(f"http://127.0.0.1:{port}", session.id, reader, close)
