"""Sound sources: the kiosk microphone through ALSA, and a video file's audio track for replay.

Both give `AudioChunk`s of 16 kHz mono 16-bit samples (what the voice activity model takes), stamped on
the same clocks as the frames: a live chunk with the monotonic and wall clocks of its first sample, a
file's chunk with the file's own timeline (0 = the video's first frame), so a replay is deterministic.

A file is read by PyAV. The microphone is read by sounddevice (PortAudio, Debian's libportaudio2, over the
system's ALSA library, so the system's ALSA configuration and its PulseAudio and PipeWire plugins apply), in
blocks of 100 ms. Measured against PyAV's ALSA input on the same device (bench/bench_audio.py): FFmpeg's
ALSA input always asks for the device's smallest period and hands over one packet per period (1 sample on
the test device, about 1 ms on a USB microphone), so its per-packet cost dominates; its bundled ALSA library
also looks for its configuration in a build directory, not the system's.
"""

from __future__ import annotations

import contextlib
import logging
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av
import numpy as np

from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.errors import UserError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
# A live chunk: 100 ms of sound (the VAD's windows are 32 ms; fewer, larger blocks cost less).
BLOCK = 1600
# Blocks waiting for the reader (10 s): more means nobody reads, and the oldest are worthless anyway.
_QUEUED_BLOCKS = 100
# SampleClock: how far the count of samples may drift from the clock, how fast it is brought back, and how
# far behind the clock it starts again.
_DRIFT_S = 0.02
_SLEW_S = 0.001
_RESTART_S = 0.2


class AudioSourceError(UserError):
    """The sound source cannot be opened or has failed."""


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """Consecutive samples and when the first of them was taken (`mono` on the frames' monotonic clock,
    `wall` for reports). A file's chunks carry the file's timeline, like its frames."""

    samples: np.ndarray  # int16, mono, SAMPLE_RATE
    mono: float
    wall: float

    @property
    def duration(self) -> float:
        return len(self.samples) / SAMPLE_RATE

    @property
    def end_mono(self) -> float:
        return self.mono + self.duration


class AudioSource(Protocol):
    name: str

    def read(self) -> AudioChunk | None:
        """The next chunk; None at the end of a file. Raises AudioSourceError on failure."""

    def close(self) -> None: ...


def _mono_16k() -> av.AudioResampler:
    return av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)


def _samples(frames: list[av.AudioFrame]) -> np.ndarray:
    arrays = [frame.to_ndarray().reshape(-1) for frame in frames]
    return np.concatenate(arrays) if arrays else np.zeros(0, np.int16)


def has_audio(path: Path) -> bool:
    """Whether a video file has a sound track (a file without one simply gets no audio analysis)."""
    with av.open(str(path)) as container:
        return bool(container.streams.audio)


class FileAudioSource:
    """A video file's sound track, on the file's timeline: a sample at t seconds after the first video
    frame has mono = t (and wall = start_wall + t), as VideoFileSource stamps its frames."""

    def __init__(self, path: Path, start_wall: float = 0.0):
        self.name = str(path)
        self._start_wall = start_wall
        try:
            self._container = av.open(str(path))
        except av.FFmpegError as exc:
            raise AudioSourceError(f"{path}: {exc}") from exc
        if not self._container.streams.audio:
            self._container.close()
            raise AudioSourceError(f"{path}: no sound track")
        self._stream = self._container.streams.audio[0]
        video = self._container.streams.video
        # The timeline's zero: the first video frame (streams may start at different times).
        zero = video[0].start_time * video[0].time_base if video and video[0].start_time is not None else 0
        self._zero = float(zero)
        self._resampler = _mono_16k()
        self._decoded = self._container.decode(self._stream)
        self._next_mono: float | None = None

    def read(self) -> AudioChunk | None:
        for frame in self._decoded:
            samples = _samples(self._resampler.resample(frame))
            if not len(samples):
                continue
            return self._stamped(samples, frame)
        tail = _samples(self._resampler.resample(None))
        if len(tail) and self._next_mono is not None:
            chunk = AudioChunk(tail, self._next_mono, self._start_wall + self._next_mono)
            self._next_mono = None
            return chunk
        return None

    def _stamped(self, samples: np.ndarray, frame: av.AudioFrame) -> AudioChunk:
        if self._next_mono is None:
            # The first sample's time; after it, samples are counted (the resampler may hold a few back).
            self._next_mono = float(frame.pts * frame.time_base) - self._zero if frame.pts is not None else 0.0
        mono = self._next_mono
        self._next_mono = mono + len(samples) / SAMPLE_RATE
        return AudioChunk(samples, mono, self._start_wall + mono)

    def close(self) -> None:
        self._container.close()


class SampleClock:
    """Stamps consecutive blocks of a live device by counting samples from the first block (its time: the
    clock at its arrival less its duration), so stamps do not jitter with the scheduler, and keeps the count
    on the clock: drifted more than 20 ms (a device clock faster or slower than the system's, by up to 100
    ppm for a cheap one), the count is slewed towards the clock by at most 1 ms per block; more than 200 ms
    behind it (samples lost to an overrun), the count starts again at the clock. So stamps always increase,
    and a device that delivers faster than real time (the null device of the tests) keeps its count."""

    def __init__(self) -> None:
        self._anchor: tuple[float, float] | None = None  # (mono, wall) of sample 0 since the last anchor
        self._counted = 0

    def stamp(self, samples: int, arrived_mono: float, arrived_wall: float) -> tuple[float, float]:
        """(mono, wall) of the first of `samples` samples that arrived (their last one) at the given times."""
        duration = samples / SAMPLE_RATE
        measured = arrived_mono - duration
        if self._anchor is None or measured - self._counted_mono() > _RESTART_S:
            self._anchor, self._counted = (measured, arrived_wall - duration), 0
        drift = measured - self._counted_mono()
        if abs(drift) > _DRIFT_S:
            slew = max(-_SLEW_S, min(_SLEW_S, drift))
            self._anchor = (self._anchor[0] + slew, self._anchor[1] + slew)
        offset = self._counted / SAMPLE_RATE
        self._counted += samples
        return self._anchor[0] + offset, self._anchor[1] + offset

    def _counted_mono(self) -> float:
        assert self._anchor is not None
        return self._anchor[0] + self._counted / SAMPLE_RATE


class MicrophoneSource:
    """A capture device through PortAudio (sounddevice): an ALSA name ("default", "hw:1,0", a PCM of the ALSA
    configuration such as "pulse"), 16 kHz mono; a read that brings nothing for `timeout_s` fails.

    PortAudio's callback thread queues each block with the clock at its arrival; SampleClock stamps it."""

    def __init__(self, device: str, timeout_s: float, clock: Clock = SYSTEM_CLOCK):
        self.name = device
        self._clock = clock
        self._timeout_s = timeout_s
        self._blocks: queue.Queue[tuple[np.ndarray, float, float]] = queue.Queue(maxsize=_QUEUED_BLOCKS)
        self._stamps = SampleClock()
        try:
            import sounddevice
        except OSError as exc:  # the PortAudio library itself is missing
            raise AudioSourceError(f"audio: PortAudio is not installed ({exc}): apt install libportaudio2") from exc
        # PortAudio lists the devices once, when it starts: start it again, so a microphone plugged in (or an
        # ALSA configuration changed) since is found. One microphone per process, none open now.
        sounddevice._terminate()
        sounddevice._initialize()
        try:
            self._stream = sounddevice.InputStream(
                device=device, samplerate=SAMPLE_RATE, channels=1, dtype="int16", blocksize=BLOCK,
                callback=self._arrived,
            )
            self._stream.start()
        except (sounddevice.PortAudioError, ValueError) as exc:
            raise AudioSourceError(f"cannot open audio device {device!r}: {exc}") from exc
        log.info("opened audio device %s", device)

    def _arrived(self, block: np.ndarray, frames: int, time_info, status) -> None:
        # PortAudio's thread: hand the block over, never wait (a full queue means nobody reads: drop).
        with contextlib.suppress(queue.Full):
            self._blocks.put_nowait((block[:, 0].copy(), self._clock.monotonic(), self._clock.time()))

    def read(self) -> AudioChunk:
        try:
            samples, arrived_mono, arrived_wall = self._blocks.get(timeout=self._timeout_s)
        except queue.Empty:
            raise AudioSourceError(f"audio device {self.name!r}: no sound for {self._timeout_s:g} s") from None
        return AudioChunk(samples, *self._stamps.stamp(len(samples), arrived_mono, arrived_wall))

    def close(self) -> None:
        self._stream.abort()
        self._stream.close()
