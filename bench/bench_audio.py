"""Sound: the CPU it costs, and picture/sound sync in a recorded segment.

CPU, per second of sound, as % of one core (process time, all threads):
- capture: the test ALSA device (ALSA's file plugin over null, no sound card needed) read through
  sounddevice/PortAudio in 100 ms blocks, as the daemon does, beside PyAV's ALSA input on the same device;
- VAD: Silero on a minute of an exam room (a real quiet room with 8 spoken sentences); AAC: the recorder's
  encoder on the same minute.

A/V offset: the recorder records a session of `--minutes` (default 10) of 15 fps picture and microphone
sound, with a white frame and a 1 kHz beep at the same capture time 2 s into the session and 2 s into its
last minute; the microphone's sample clock runs off the system's by --ppm (0, and a cheap USB
microphone's +-100). The offset is where the beep starts in the segment file minus where the white frame is.

    .venv/bin/python bench/bench_audio.py                  # about a minute
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import audio_mix

from daemon.capture.audio import BLOCK, SAMPLE_RATE, AudioChunk, MicrophoneSource, SampleClock
from daemon.capture.frame import Frame
from daemon.config import Config, RecordingConfig
from daemon.inference.voice import VoiceAnalyzer
from daemon.recording.disk import DiskSpace
from daemon.recording.mp4 import AacEncoder
from daemon.recording.recorder import Recorder

FPS = 15
SIZE = (160, 120)
MARK_S = 2.0  # the marks: this long into the session and into its last minute
BEEP_S = 0.2
CPU_SOUND_S = 60.0


def av_offsets(folder: Path, minutes: float, ppm: float) -> list[float]:
    """The A/V offset in seconds (sound minus picture) at each mark, in the segment that holds it."""
    seconds = minutes * 60 + 5
    marks = [MARK_S, max(MARK_S, minutes * 60 - 60 + MARK_S)]
    device_rate = SAMPLE_RATE * (1 + ppm * 1e-6)  # the microphone's samples per second of real time
    total = int(seconds * device_rate)
    sound = audio_mix.to_int16(audio_mix.pink_noise(total / SAMPLE_RATE, -60))
    beep = audio_mix.to_int16(audio_mix.at_level(np.sin(2 * np.pi * 1000 * np.arange(int(BEEP_S * SAMPLE_RATE))
                                                         / SAMPLE_RATE), -20))
    for mark in marks:
        first = round(mark * device_rate)
        sound[first:first + len(beep)] = beep
    config = RecordingConfig(width=SIZE[0], height=SIZE[1], fps=FPS, segment_s=60.0, queue_frames=600)
    media = []
    recorder = Recorder(config, folder, lookback_s=0.0, on_media=media.append,
                        disk=DiskSpace(folder, 0, free_bytes=lambda _: 10**12), sound=True)
    recorder.start()
    recorder.start_session("av")
    grey, white = np.full((SIZE[1], SIZE[0], 3), 60, np.uint8), np.full((SIZE[1], SIZE[0], 3), 255, np.uint8)
    white_frames = {round(mark * FPS) for mark in marks}
    stamps = SampleClock()
    # In capture order: each frame when taken, each block when its last sample arrived (real time).
    arrivals = [(k / FPS, "frame", k) for k in range(int(seconds * FPS))]
    arrivals += [((b + BLOCK) / device_rate, "sound", b) for b in range(0, total - BLOCK, BLOCK)]
    offered = 0
    for at, kind, index in sorted(arrivals):
        if kind == "frame":
            image = white if index in white_frames else grey
            recorder.offer(Frame(image, index, at, 1e9 + at))
            offered += 1
            if offered % 300 == 0:  # let the encoder catch up: nothing is dropped
                _wait(lambda done=offered: recorder.status.frames_recorded >= done)
        else:
            mono, wall = stamps.stamp(BLOCK, at, 1e9 + at)
            recorder.offer_audio(AudioChunk(sound[index:index + BLOCK], mono, wall))
    recorder.stop_session().result(timeout=300)
    recorder.close()
    assert recorder.status.frames_dropped == 0 and recorder.status.sound_dropped == 0
    offsets = []
    segments = sorted((m for m in media if m.kind == "segment"), key=lambda m: m.start)
    for mark in marks:
        segment = next(m for m in reversed(segments) if m.start <= 1e9 + mark)
        offsets.append(_beep_s(folder / segment.name) - _white_s(folder / segment.name))
    return offsets


def _wait(done) -> None:
    deadline = time.monotonic() + 120
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the recorder did not catch up")
        time.sleep(0.05)


def _white_s(path: Path) -> float:
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.to_ndarray(format="gray").mean() > 200:
                return float(frame.pts * frame.time_base)
    raise AssertionError(f"{path}: no white frame")


def _beep_s(path: Path) -> float:
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            samples = frame.to_ndarray().reshape(-1)
            loud = np.flatnonzero(np.abs(samples) > 0.05)
            if len(loud):
                return float(frame.pts * frame.time_base) + loud[0] / frame.sample_rate
    raise AssertionError(f"{path}: no beep")


def config_media() -> Path:
    return Path(os.environ.get("PROCTORD_SHARED_DIR", REPO.parent / "shared")) / "media"


def cpu_percent(work, sound_s: float) -> float:
    started = time.process_time()
    work()
    return 100 * (time.process_time() - started) / sound_s


def capture_cpu(folder: Path, sound: np.ndarray) -> dict[str, float]:
    """Both capture paths reading the same test device for len(sound) seconds of sound."""
    os.environ["ALSA_CONFIG_PATH"] = audio_mix.test_device(folder, sound)
    seconds = len(sound) / SAMPLE_RATE

    def portaudio() -> None:
        source = MicrophoneSource("proctord_test_mic", 2.0)
        read = 0
        while read < len(sound):
            read += len(source.read().samples)
        source.close()

    def pyav() -> None:
        # PyAV's bundled ALSA library reads only the device's file (it looks for alsa.conf elsewhere).
        os.environ["ALSA_CONFIG_PATH"] = os.environ["ALSA_CONFIG_PATH"].split(":")[1]
        with av.open("proctord_test_mic", "r", format="alsa",
                     options={"sample_rate": str(SAMPLE_RATE), "channels": "1"}) as container:
            read = 0
            for frame in container.decode(audio=0):
                read += frame.samples
                if read >= len(sound):
                    break

    return {"sounddevice (PortAudio), 100 ms blocks": cpu_percent(portaudio, seconds),
            "PyAV's ALSA input, one packet per period": cpu_percent(pyav, seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--ppm", type=float, nargs="*", default=[0.0, -100.0, 100.0])
    args = parser.parse_args()
    config = Config()
    # A minute of an exam room: the quiet room a real phone heard (proctoring_ai's center_focus, looped)
    # with 8 sentences spoken into it.
    room = audio_mix.read_audio(config_media() / "videos" / "proctoring_ai" / "center_focus.mp4")
    room = np.tile(room, int(CPU_SOUND_S * SAMPLE_RATE / len(room)) + 1)
    placements = [(t, audio_mix.SENTENCES[i % 4]) for i, t in enumerate(range(2, 58, 7))]
    speech, _ = audio_mix.speech_track(CPU_SOUND_S, placements, room=room)

    def vad() -> None:
        analyzer = VoiceAnalyzer(config.models_dir, config.audio.speech_threshold)
        for first in range(0, len(speech), BLOCK):
            analyzer.analyze(AudioChunk(speech[first:first + BLOCK], first / SAMPLE_RATE, 0.0))

    def aac() -> None:
        encoder = AacEncoder((0.0, 0.0))
        for first in range(0, len(speech), BLOCK):
            encoder.encode(AudioChunk(speech[first:first + BLOCK], first / SAMPLE_RATE, 0.0))
        encoder.close()

    with tempfile.TemporaryDirectory() as tmp:
        capture = capture_cpu(Path(tmp), speech[: 10 * SAMPLE_RATE])
        figures = {**{f"capture: {k}": v for k, v in capture.items()},
                   "VAD: Silero, 32 ms windows": cpu_percent(vad, CPU_SOUND_S),
                   "AAC: 32 kbit/s, 16 kHz mono, fast coder": cpu_percent(aac, CPU_SOUND_S)}
        print("CPU per second of sound, % of one core")
        for name, value in figures.items():
            print(f"  {name:52} {value:7.2f} %")
        daemon = capture["sounddevice (PortAudio), 100 ms blocks"] + figures["VAD: Silero, 32 ms windows"] + \
            figures["AAC: 32 kbit/s, 16 kHz mono, fast coder"]
        print(f"  {'the daemon (capture + VAD + AAC)':52} {daemon:7.2f} %")
        print(f"A/V offset in the recorded segment (sound minus picture), {args.minutes:g} min session, "
              f"one frame = {1000 / FPS:.0f} ms")
        for ppm in args.ppm:
            folder = Path(tmp) / f"av{ppm:+g}"
            start, end = av_offsets(folder, args.minutes, ppm)
            print(f"  microphone clock {ppm:+5g} ppm: at the start {1000 * start:+6.1f} ms, "
                  f"after {args.minutes:g} min {1000 * end:+6.1f} ms")


if __name__ == "__main__":
    main()
