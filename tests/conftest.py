"""Shared pytest fixtures: the shared media and models, a real mosquitto, a daemon subprocess."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from daemon.config import Config

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROCTORD_SHARED_DIR", REPO.parent / "shared"))


def pytest_configure(config):
    # Tests that reach PyPI or other public servers; deselect offline with -m "not network".
    config.addinivalue_line("markers", "network: needs internet access (PyPI)")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not (SHARED / "media").is_dir():
        pytest.skip(f"shared media not found at {SHARED} (set PROCTORD_SHARED_DIR)")
    return SHARED


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The models `./run test` installed with `proctord models fetch`."""
    path = Config().models_dir
    if not (path / "face_detection_short_range.tflite").is_file():
        pytest.skip(f"models not installed in {path}: run `proctord models fetch --from ../shared/models`")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    """Poll until `predicate()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- proctord as a real process ------------------------------------------------------------------------


def daemon_config(tmp_path: Path, models_dir: Path, video: Path | None = None, **tables: dict) -> str:
    """A `proctord run` config as TOML: data in tmp_path/data, the installed models, `video` as a file
    camera, the broker and the web page off. Each keyword is a table the test cares about: [paths] and
    [camera] keys are laid over these; any other table replaces its default (`web={"port": p}` turns the
    web page on)."""
    config = {
        "paths": {"data_dir": tmp_path / "data", "models_dir": models_dir},
        "camera": {"kind": "file", "path": video} if video else {},
        "mqtt": {"enabled": False},
        "web": {"enabled": False},
    }
    for name, keys in tables.items():
        config[name] = {**config[name], **keys} if name in ("paths", "camera") else keys
    return "".join(
        f"[{name}]\n" + "".join(f"{key} = {_toml_value(value)}\n" for key, value in keys.items())
        for name, keys in config.items()
        if keys
    )


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return f"[{', '.join(map(_toml_value, value))}]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def start_proctord(config: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`proctord run --config CONFIG` as a real process, its output appended to `log`."""
    with log.open("a") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon.cli", "run", "--config", str(config)],
            cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
        )


def run_proctord(*args: str, timeout: float | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    """`proctord ARGS` run to its exit (`stdin` its input), its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False, input=stdin,
    )


def kill_process(process: subprocess.Popen) -> None:
    """SIGKILL `process` unless it has exited already, and reap it."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


class Mosquitto:
    """A real broker on a loopback port, started and stopped by the test.

    `settings` follow the listener line: listener options (TLS files), authentication, persistence."""

    ANONYMOUS = "allow_anonymous true\npersistence false\n"

    def __init__(self, workdir: Path, port: int | None = None, settings: str = ANONYMOUS):
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.skip("mosquitto is not installed (./run test installs it)")
        self.port = port or free_port()
        self._conf = workdir / f"mosquitto-{self.port}.conf"
        # As root, mosquitto would switch to the `mosquitto` user, who cannot read the test's private tmp dir.
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self._conf.write_text(f"{run_as}listener {self.port} 127.0.0.1\n{settings}")
        self.log = workdir / f"mosquitto-{self.port}.log"
        self._binary = binary
        self._process: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        with self.log.open("a") as log:
            self._process = subprocess.Popen([self._binary, "-c", str(self._conf)], stdout=log, stderr=log)
        wait_until(self._accepts, 10, f"mosquitto on port {self.port}")
        return self

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def _accepts(self) -> bool:
        return accepts_connections(self._process, self.port, self.log, "mosquitto")


def accepts_connections(process: subprocess.Popen | None, port: int, log: Path, name: str) -> bool:
    """Whether a server the test started listens on `port` yet; fails with its log if it has exited."""
    if process and process.poll() is not None:
        raise AssertionError(f"{name} exited: {log.read_text()[-2000:]}")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a size-limited tmpfs (root only, e.g. in CI containers); skip where that is not allowed."""
    mounted: list[Path] = []

    def mount(size_kib: int) -> Path:
        point = tmp_path / f"tmpfs-{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(point)],
                              capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        # Lazy: a reader connection the test kept open must not leave the mount behind.
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs (root only), unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path) -> None:
    """Write to `disk` until it is full."""
    with (disk / "filler").open("wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError:
            pass


def read_frames(video: Path, limit: int | None = None, every: int = 1) -> list[np.ndarray]:
    """A video's frames (BGR): every `every`-th one, at most `limit` of them."""
    capture, frames, index = cv2.VideoCapture(str(video)), [], 0
    while (limit is None or len(frames) < limit) and (ok_frame := capture.read())[0]:
        if index % every == 0:
            frames.append(ok_frame[1])
        index += 1
    capture.release()
    return frames


# The scenario video: real faces from a shared clip, cut into segments whose ground truth we know.
SCENARIO_FPS = 10
SCENARIO = [  # (segment, seconds)
    ("one_face", 3.0),
    ("no_face", 4.0),
    ("one_face", 3.0),
    ("two_faces", 4.0),
    ("one_face", 2.0),
]


def scenario_times(segment: str) -> list[tuple[float, float]]:
    """Start and end (seconds from the video start) of each segment of that kind."""
    spans, t = [], 0.0
    for name, seconds in SCENARIO:
        if name == segment:
            spans.append((t, t + seconds))
        t += seconds
    return spans


@pytest.fixture(scope="session")
def scenario_video(shared, tmp_path_factory) -> Path:
    """A 16 s, 10 fps video: one face, an empty desk (no face), one face, two faces, one face."""
    return write_scenario_video(shared, tmp_path_factory.mktemp("media") / "scenario.mp4")


def write_scenario_video(shared: Path, path: Path) -> Path:
    """The scenario video (SCENARIO) written to `path`, from the shared media (also used by bench/)."""
    faces = read_frames(shared / "media/videos/proctoring_ai/center_focus.mp4")
    height, width = faces[0].shape[:2]
    desk = cv2.resize(cv2.imread(str(shared / "media/images/coco/coco_val2017_000000017182.jpg")), (2 * width, height))

    def one_face(i: int) -> np.ndarray:
        canvas = np.full((height, 2 * width, 3), 90, np.uint8)
        canvas[:, width // 2 : width // 2 + width] = faces[i % len(faces)]
        return canvas

    def two_faces(i: int) -> np.ndarray:
        return np.hstack([faces[i % len(faces)], faces[(i + 100) % len(faces)]])

    make = {"one_face": one_face, "no_face": lambda i: desk, "two_faces": two_faces}
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), SCENARIO_FPS, (2 * width, height))
    index = 0
    for segment, seconds in SCENARIO:
        for _ in range(round(seconds * SCENARIO_FPS)):
            writer.write(make[segment](index))
            index += 1
    writer.release()
    return path


@pytest.fixture(scope="session")
def scenario_frames(scenario_video) -> list[np.ndarray]:
    """The scenario video's frames (BGR), to feed a stage directly on the scenario's own timeline."""
    return read_frames(scenario_video)
