"""Test sound made on the spot: speech spoken by Debian's espeak-ng, pink noise and fan hum, mixed at known
times into a copy of a shared clip (its video packets copied unchanged, an AAC track added).

Used by bench/bench_vad.py, bench/bench_audio.py and the audio tests; nothing it makes is ever committed.
All noise is seeded, so the same call makes the same sound.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

RATE = 16_000
# Sentences of the length a whispered answer or a phone call's line has (2-4 s at espeak's default speed).
SENTENCES = (
    "The answer to question four is seventeen.",
    "Write down that the capital is Canberra.",
    "Can you hear me? Look at page twelve.",
    "Number three is the mitochondria.",
)


@dataclass(frozen=True, slots=True)
class Placed:
    """Speech placed at `start` seconds of the clip; `end` is where its sound really ends (espeak's own
    leading and trailing silence trimmed), so onset and end errors are measured against the voice itself."""

    start: float
    end: float
    text: str


def speak(text: str, voice: str = "en") -> np.ndarray:
    """espeak-ng's rendering of `text` at 16 kHz mono int16, its silence trimmed off both ends."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True)
        samples = read_audio(wav)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)
    return samples[loud[0]:loud[-1] + 1] if len(loud) else samples


def read_audio(path: Path) -> np.ndarray:
    """A file's first sound track at 16 kHz mono int16."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    parts = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
        parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts)


def at_level(signal: np.ndarray, dbfs: float) -> np.ndarray:
    """`signal` (any scale) as float samples whose RMS level is `dbfs` (int16 full scale = 0 dB)."""
    signal = signal.astype(np.float64)
    rms = float(np.sqrt(np.mean(signal**2))) or 1.0
    return signal * (32768 * 10 ** (dbfs / 20) / rms)


def pink_noise(seconds: float, dbfs: float, seed: int = 1) -> np.ndarray:
    """Pink (1/f) noise at an RMS level, shaped in the frequency domain."""
    n = round(seconds * RATE)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    return at_level(np.fft.irfft(spectrum, n), dbfs)


def fan_hum(seconds: float, dbfs: float, seed: int = 2) -> np.ndarray:
    """A fan: 50 Hz mains hum with its harmonics, blade tone and a bed of broadband noise."""
    t = np.arange(round(seconds * RATE)) / RATE
    tones = sum(amp * np.sin(2 * np.pi * f * t) for f, amp in ((50, 1.0), (100, 0.6), (150, 0.3), (240, 0.4)))
    bed = np.random.default_rng(seed).standard_normal(len(t)) * 0.3
    return at_level(tones + bed, dbfs)


def to_int16(signal: np.ndarray) -> np.ndarray:
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)


def speech_track(
    seconds: float, placements: list[tuple[float, str]], speech_dbfs: float = -26.0, floor_dbfs: float = -60.0,
    room: np.ndarray | None = None,
) -> tuple[np.ndarray, list[Placed]]:
    """A track of `seconds`: a room (`room`, a recording's own sound, else pink noise at floor_dbfs) with each
    (start, text) spoken at speech_dbfs (RMS of the voiced part)."""
    track = pink_noise(seconds, floor_dbfs, seed=3)
    if room is not None:
        track = np.zeros_like(track)
        track[:len(room)] = room[:len(track)]
    placed = []
    for start, text in placements:
        voice = at_level(speak(text), speech_dbfs)
        first = round(start * RATE)
        track[first:first + len(voice)] += voice[: len(track) - first]
        placed.append(Placed(start, start + len(voice) / RATE, text))
    return to_int16(track), placed


def duration_s(video: Path) -> float:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        return float(container.duration / av.time_base)


def with_sound(video: Path, samples: np.ndarray, out: Path, bitrate: int = 64_000) -> Path:
    """A copy of `video` (its packets unchanged) with `samples` as its AAC sound track, in Matroska so any
    source codec fits. The first sample plays with the first frame."""
    with av.open(str(video)) as source, av.open(str(out), "w", format="matroska") as target:
        video_in = source.streams.video[0]
        video_out = target.add_stream_from_template(video_in)
        audio_out = target.add_stream("aac", rate=RATE, layout="mono")
        audio_out.bit_rate = bitrate
        audio_out.codec_context.time_base = Fraction(1, RATE)
        start = video_in.start_time or 0
        for packet in source.demux(video_in):
            if packet.dts is None:
                continue
            packet.pts -= start
            packet.dts -= start
            packet.stream = video_out
            target.mux(packet)
        frame_size = audio_out.codec_context.frame_size or 1024
        for first in range(0, len(samples), frame_size):
            block = samples[first:first + frame_size]
            frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
            frame.rate, frame.pts, frame.time_base = RATE, first, Fraction(1, RATE)
            target.mux(audio_out.encode(frame))
        target.mux(audio_out.encode(None))
    return out


def mixed_clip(
    video: Path, out: Path, placements: list[tuple[float, str]], **levels: float
) -> tuple[Path, list[Placed]]:
    """`video` with speech at the given times over its own sound (a quiet room, if it has none): the clip and
    where each voice really is."""
    with av.open(str(video)) as container:
        room = read_audio(video) if container.streams.audio else None
    track, placed = speech_track(duration_s(video), placements, room=room, **levels)
    return with_sound(video, track, out), placed


def noise_clip(video: Path, out: Path, noise: np.ndarray) -> Path:
    """`video` with a steady noise (pink_noise / fan_hum of its length, or silence) as its sound."""
    return with_sound(video, to_int16(noise), out)


SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")  # Debian's libasound2-data


def test_device(folder: Path, samples: np.ndarray, name: str = "proctord_test_mic") -> str:
    """A capture device for a machine without a sound card: ALSA's `file` plugin reading `samples` (16 kHz
    mono int16, raw) over its `null` plugin, which delivers as fast as it is read. Returns the value for
    ALSA_CONFIG_PATH (the system's configuration, then this device's) under which `name` opens."""
    raw = folder / f"{name}.raw"
    raw.write_bytes(samples.astype(np.int16).tobytes())
    conf = folder / f"{name}.asoundrc"
    conf.write_text(
        f"pcm.{name} {{\n  type file\n  slave.pcm {{ type null }}\n  file \"/dev/null\"\n"
        f"  infile \"{raw}\"\n  format \"raw\"\n}}\n"
    )
    return f"{SYSTEM_ALSA_CONF}:{conf}"
