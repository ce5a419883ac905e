"""The web page's parts on their own: the login throttle, the password settings, `proctord hash-password`,
the machine figures and the live view's drawing and throttling."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from conftest import daemon_config, free_port, run_proctord
from werkzeug.security import check_password_hash, generate_password_hash

from daemon.capture.frame import Frame
from daemon.config import WebConfig
from daemon.errors import UserError
from daemon.events.model import Event
from daemon.host import cpu_temperature, host_figures
from daemon.inference.analysis import Box, DetectedObject, Face, FrameAnalysis, Gaze, HeadPose
from daemon.latest_frame import LatestFrame
from daemon.overlay import annotate
from webui.auth import load_password_hash, load_secret_key
from webui.live import LiveView
from webui.throttle import FIRST_DELAY_S, FREE_FAILURES, MAX_DELAY_S, LoginThrottle


class Clock:
    def __init__(self):
        self.mono, self.wall = 50.0, 1_700_000_000.0

    def monotonic(self):
        return self.mono

    def time(self):
        return self.wall

    def sleep(self, seconds):
        self.mono += seconds


def test_throttle_lets_typos_through_then_doubles_the_wait():
    clock = Clock()
    throttle = LoginThrottle(clock)
    for _ in range(FREE_FAILURES):
        assert throttle.claim("a") == 0
    assert throttle.claim("a") == FIRST_DELAY_S
    clock.mono += FIRST_DELAY_S
    assert throttle.claim("a") == 0  # the fourth try, after the wait
    assert throttle.claim("a") == 2 * FIRST_DELAY_S
    for _ in range(30):
        clock.mono += MAX_DELAY_S
        assert throttle.claim("a") == 0
    assert throttle.claim("a") == MAX_DELAY_S
    assert throttle.claim("b") == 0  # per address
    throttle.succeeded("a")
    assert throttle.claim("a") == 0


def test_item5_throttle_gives_parallel_guesses_one_turn_per_window():
    clock = Clock()
    throttle = LoginThrottle(clock)
    for _ in range(FREE_FAILURES):
        throttle.claim("a")
    clock.mono += FIRST_DELAY_S
    barrier = threading.Barrier(30)

    def guess() -> float:
        barrier.wait()
        return throttle.claim("a")

    with ThreadPoolExecutor(30) as pool:
        waits = list(pool.map(lambda _: guess(), range(30)))
    assert waits.count(0) == 1


def test_throttle_memory_is_bounded():
    throttle = LoginThrottle(Clock(), max_clients=100)
    for i in range(FREE_FAILURES):
        throttle.claim("first")
    for i in range(1000):
        throttle.claim(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._failures) == 100
    assert throttle.claim("first") == 0  # the oldest was forgotten


def test_password_hash_settings(tmp_path, monkeypatch):
    good = generate_password_hash("a long password", method="pbkdf2:sha256:1000")
    assert load_password_hash(WebConfig()) is None
    assert load_password_hash(WebConfig(password_hash=good)) == good

    (tmp_path / "web-password").write_text(good + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert load_password_hash(WebConfig(password_file="web-password")) == good
    assert load_password_hash(WebConfig(password_file=str(tmp_path / "web-password"))) == good

    with pytest.raises(UserError, match="both set"):
        load_password_hash(WebConfig(password_hash=good, password_file="web-password"))
    with pytest.raises(UserError, match="cannot read"):
        load_password_hash(WebConfig(password_file="missing"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(UserError, match="CREDENTIALS_DIRECTORY is not set"):
        load_password_hash(WebConfig(password_file="web-password"))


def test_a_plain_password_in_the_config_is_refused_without_being_repeated():
    with pytest.raises(UserError) as refused:
        load_password_hash(WebConfig(password_hash="hunter2hunter2"))
    assert "web.password_hash: not a password hash" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_secret_key_is_made_once_private_and_kept(tmp_path):
    key = load_secret_key(tmp_path / "data")
    path = tmp_path / "data" / "web-secret-key"
    assert len(key) == 32 and path.stat().st_mode & 0o777 == 0o600
    assert load_secret_key(tmp_path / "data") == key
    path.write_text("not hex")
    assert load_secret_key(tmp_path / "data") != key  # a damaged key is replaced, not a crash


def test_hash_password_command():
    run = [sys.executable, "-m", "daemon.cli", "hash-password"]
    made = subprocess.run(run, input="a long password\n", capture_output=True, text=True, check=True)
    password_hash = made.stdout.strip()
    assert password_hash.startswith("scrypt:") and check_password_hash(password_hash, "a long password")
    assert load_password_hash(WebConfig(password_hash=password_hash)) == password_hash
    short = subprocess.run(run, input="short\n", capture_output=True, text=True, check=False)
    assert short.returncode == 2 and "at least 8 characters" in short.stderr and not short.stdout


def test_cpu_temperature_prefers_the_cpu_zone(tmp_path):
    for index, (kind, millidegrees) in enumerate([("PMIC-Die", "100000"), ("CPU-therm", "47500")]):
        zone = tmp_path / f"thermal_zone{index}"
        zone.mkdir()
        (zone / "type").write_text(kind + "\n")
        (zone / "temp").write_text(millidegrees + "\n")
    assert cpu_temperature(tmp_path) == 47.5
    assert cpu_temperature(tmp_path / "none") is None


def test_host_figures_measure_the_data_directory_disk(tmp_path):
    figures = host_figures(tmp_path / "not-yet-made")
    assert 0 < figures.disk_free_bytes <= figures.disk_total_bytes and figures.cpus >= 1


def _analysed_photo(shared) -> tuple[Frame, FrameAnalysis]:
    image = cv2.imread(str(shared / "media/images/dlib/2008_002506.jpg"))
    landmarks = np.array([[200 + i % 20, 150 + i // 20, 0] for i in range(468)], np.float32)
    face = Face(Box(180, 120, 90, 110), 0.93, ((205, 160), (245, 160), (225, 185), (225, 205)),
                landmarks=landmarks, pose=HeadPose(20, -5, 3), gaze=Gaze(25, -4, 5, 1))
    book = DetectedObject("book", 0.7, Box(10, 10, 60, 40))
    frame = Frame(image=image, seq=1, mono=10.0, wall=1_700_000_000.0)
    return frame, FrameAnalysis(1, 10.0, frame.wall, frame.width, frame.height, (face,), objects=(book,))


def test_annotate_draws_on_a_copy(shared):
    frame, analysis = _analysed_photo(shared)
    original = frame.image.copy()
    event = Event("e1", "s1", "looking_away", "medium", frame.wall, None, 0.8)
    picture = annotate(frame.image, analysis, [event], max_width=4096)
    assert np.array_equal(frame.image, original)  # the pipeline's frame is never written to
    assert picture.shape == original.shape
    assert (picture[:26] == (40, 40, 220)).all(axis=2).mean() > 0.5  # the red open-events banner
    landmark_pixels = picture[150:174, 200:220]
    assert (landmark_pixels == 255).all(axis=2).sum() >= 400  # the mesh, in white
    small = annotate(frame.image, analysis, [], max_width=200)
    assert small.shape[1] == 200


def test_live_view_encodes_at_most_max_fps_whatever_the_viewers(shared):
    clock, latest = Clock(), LatestFrame()
    live = LiveView(latest.get, list, max_fps=2.0, clock=clock)
    assert live.jpeg() is None
    frame, analysis = _analysed_photo(shared)
    latest.publish(frame, analysis)
    first = live.jpeg()
    assert cv2.imdecode(np.frombuffer(first, np.uint8), cv2.IMREAD_COLOR).shape[1] == min(640, frame.width)
    for _ in range(20):  # many viewers within half a second: one encoding
        clock.mono += 0.02
        assert live.jpeg() is first
    clock.mono += 0.2
    assert live.jpeg() is first and live.encodings == 1  # no new frame: nothing to encode
    latest.publish(Frame(frame.image, 2, clock.mono, frame.wall + 1), analysis)
    assert live.jpeg() is not first and live.encodings == 2


def test_the_daemon_refuses_to_start_on_a_plain_password_naming_the_key_only(tmp_path, scenario_video, models_dir):
    config = tmp_path / "proctord.toml"
    config.write_text(daemon_config(
        tmp_path, models_dir, scenario_video, web={"port": free_port(), "password_hash": "my secret password"}
    ))
    run = run_proctord("run", "--config", str(config), timeout=60)
    assert run.returncode == 2
    assert f"{config}: web.password_hash: not a password hash" in run.stderr
    assert "my secret password" not in run.stderr + run.stdout
