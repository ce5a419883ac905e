"""Voice activity: Silero VAD (ONNX, onnxruntime) against WebRTC's VAD (webrtcvad-wheels), on the same sound.

Each VAD's per-window decisions go through the same `speech` rule (its [rules.speech] timing) as in the
daemon, and are scored against where the voices really are:

- speech: espeak-ng sentences at known times over a quiet room (pink noise at -60 dBFS), and the same over
  pink noise at -40 dBFS; onset and end errors (event minus voice, median and max), misses, extra events;
- steady sounds with no voice: digital silence, the quiet room, pink noise and fan hum at several levels;
  every `speech` event there is a false alarm;
- CPU: the analysis's process time per second of sound, as % of one core.

    .venv/bin/python bench/bench_vad.py          # needs espeak-ng, and webrtcvad-wheels in the venv

webrtcvad-wheels is only for this comparison (the daemon does not use it): pip install webrtcvad-wheels.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import audio_mix

from daemon.capture.audio import SAMPLE_RATE, AudioChunk
from daemon.config import Config
from daemon.events.rules import ConditionTracker, Instant, Observation
from daemon.inference.voice import VoiceAnalyzer

SPEECH_AT = [3.0, 10.0, 17.0, 24.0, 31.0, 38.0, 45.0, 52.0]
TRACK_S = 60.0
NOISE_S = 30.0
WEBRTC_FRAME = 480  # 30 ms at 16 kHz

Decisions = list[tuple[float, float, bool]]  # (start s, duration s, speech)


def silero(models_dir: Path, threshold: float) -> Callable[[np.ndarray], Decisions]:
    def run(samples: np.ndarray) -> Decisions:
        analyzer = VoiceAnalyzer(models_dir, threshold)
        return [(w.mono, w.duration, w.speech) for w in analyzer.analyze(AudioChunk(samples, 0.0, 0.0))]
    return run


def webrtc(mode: int) -> Callable[[np.ndarray], Decisions]:
    import webrtcvad

    def run(samples: np.ndarray) -> Decisions:
        vad = webrtcvad.Vad(mode)
        out = []
        for first in range(0, len(samples) - WEBRTC_FRAME + 1, WEBRTC_FRAME):
            frame = samples[first:first + WEBRTC_FRAME].tobytes()
            out.append((first / SAMPLE_RATE, WEBRTC_FRAME / SAMPLE_RATE, vad.is_speech(frame, SAMPLE_RATE)))
        return out
    return run


def speech_events(decisions: Decisions, config: Config) -> list[tuple[float, float]]:
    """The `speech` events the daemon's rule makes of these decisions: (start, end) seconds."""
    tracker = ConditionTracker("speech", config.rules.speech, lambda: "e", "s")
    changes = [tracker.update(Instant(mono, mono), Observation(speech, 1.0)) for mono, _, speech in decisions]
    end = decisions[-1][0] + decisions[-1][1]
    changes.append(tracker.close(Instant(end, end)))
    return [(c.event.start, c.event.end) for c in changes if c is not None and c.kind == "end"]


def score(events: list[tuple[float, float]], voices: Iterable[audio_mix.Placed]) -> dict:
    onsets, ends, missed = [], [], 0
    voices = list(voices)
    matched = set()
    for voice in voices:
        hits = [i for i, (s, e) in enumerate(events) if s < voice.end and e > voice.start]
        if not hits:
            missed += 1
            continue
        matched.update(hits)
        onsets.append(events[hits[0]][0] - voice.start)
        ends.append(events[hits[-1]][1] - voice.end)
    return {"onsets": onsets, "ends": ends, "missed": missed, "extra": len(events) - len(matched)}


def errors(values: list[float]) -> str:
    if not values:
        return "-"
    worst = max(values, key=abs)
    return f"{statistics.median(values):+.2f} / {worst:+.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="a config whose [rules.speech] and [audio] to use")
    args = parser.parse_args()
    from daemon.config import load_config

    config = load_config(args.config) if args.config else Config()
    placements = [(t, audio_mix.SENTENCES[i % len(audio_mix.SENTENCES)]) for i, t in enumerate(SPEECH_AT)]
    quiet, voices = audio_mix.speech_track(TRACK_S, placements)
    noisy, _ = audio_mix.speech_track(TRACK_S, placements, floor_dbfs=-40.0)
    steady = {
        "digital silence": np.zeros(round(NOISE_S * SAMPLE_RATE), np.int16),
        "quiet room (pink -60 dBFS)": audio_mix.to_int16(audio_mix.pink_noise(NOISE_S, -60)),
        **{f"pink noise {db} dBFS": audio_mix.to_int16(audio_mix.pink_noise(NOISE_S, db)) for db in (-50, -40, -30, -20)},
        **{f"fan hum {db} dBFS": audio_mix.to_int16(audio_mix.fan_hum(NOISE_S, db)) for db in (-40, -30, -20)},
    }
    vads = {"silero": silero(config.models_dir, config.audio.speech_threshold)}
    try:
        vads |= {f"webrtc mode {mode}": webrtc(mode) for mode in range(4)}
    except ImportError:
        print("webrtcvad is not installed (pip install webrtcvad-wheels): Silero alone", file=sys.stderr)

    rows = []
    for name, vad in vads.items():
        row = {"vad": name}
        cpu = audio = 0.0
        for label, track in (("quiet", quiet), ("noisy", noisy)):
            started = time.process_time()
            decisions = vad(track)
            cpu += time.process_time() - started
            audio += len(track) / SAMPLE_RATE
            row[label] = score(speech_events(decisions, config), voices)
        for label, track in steady.items():
            started = time.process_time()
            decisions = vad(track)
            cpu += time.process_time() - started
            audio += len(track) / SAMPLE_RATE
            row[label] = len(speech_events(decisions, config))
        row["cpu"] = 100 * cpu / audio
        rows.append(row)

    print(f"speech: {len(voices)} espeak-ng sentences of {TRACK_S:g} s, at -26 dBFS; events by the [rules.speech] "
          f"timing (onset {config.rules.speech.onset_s:g} s, release {config.rules.speech.release_s:g} s, "
          f"min {config.rules.speech.min_duration_s:g} s)")
    print(f"{'':34}" + "".join(f"{row['vad']:>17}" for row in rows))
    for label, title in (("quiet", "over a quiet room (-60 dBFS)"), ("noisy", "over pink noise at -40 dBFS")):
        print(f"speech {title}")
        for key, text in (("onsets", "  onset error s, median / max"), ("ends", "  end error s, median / max")):
            print(f"{text:34}" + "".join(f"{errors(row[label][key]):>17}" for row in rows))
        print(f"{'  missed / extra events':34}" + "".join(
            f"{row[label]['missed']:>8} / {row[label]['extra']:<6}" for row in rows))
    print(f"speech events on {NOISE_S:g} s of sound without a voice")
    for label in steady:
        print(f"  {label:32}" + "".join(f"{row[label]:>17}" for row in rows))
    print(f"{'CPU, % of one core':34}" + "".join(f"{row['cpu']:>16.2f}%" for row in rows))


if __name__ == "__main__":
    main()
