"""Voice activity: 16 kHz sound in, one AudioAnalysis per 32 ms window out.

The model is Silero VAD's 16 kHz ONNX export, run by onnxruntime (no torch), one window of 512 samples
at a time with its 64 samples of context and its recurrent state carried from window to window. Chosen
over WebRTC's VAD on the same mixed audio (bench/bench_vad.py, README "Audio"): WebRTC's flags pink
noise and fan hum as speech at every aggressiveness, Silero flags neither, for about the same onset and
end errors, at about 1 % of a core here.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from daemon.capture.audio import SAMPLE_RATE, AudioChunk
from daemon.inference.analysis import AudioAnalysis

VAD_MODEL_FILE = "silero_vad_16k_op15.onnx"
WINDOW = 512  # samples: the model's window at 16 kHz (32 ms)
WINDOW_S = WINDOW / SAMPLE_RATE
_CONTEXT = 64  # samples of the previous window the model sees again
# Speech ends this far below the threshold that starts it (Silero's own get_speech_timestamps).
HYSTERESIS = 0.15
# A chunk further than this from where the previous one ended starts a new stretch (a reopened device,
# dropped samples): the held samples and the model's state belong to the old one.
_GAP_S = 0.05
SILENCE_DBFS = -100.0
# Windows quieter than this are not speech, and the model is not run on them (most of an exam is a quiet
# room: real rooms measured -69 to -74 dBFS, the proctoring_ai clips' phone); the model starts afresh on the
# next louder window. A whisper at a metre is about -40 dBFS.
QUIET_DBFS = -62.0


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dB below full scale; SILENCE_DBFS for digital silence."""
    if not len(samples):
        return SILENCE_DBFS
    rms = math.sqrt(float(np.mean(np.square(samples, dtype=np.float64))))
    return max(SILENCE_DBFS, 20 * math.log10(rms / 32768)) if rms > 0 else SILENCE_DBFS


class SileroVad:
    """Speech probability of consecutive 512-sample windows; `reset()` between unrelated stretches."""

    def __init__(self, path: Path):
        import onnxruntime  # imported here: only a config with audio needs it

        if not path.is_file():
            raise FileNotFoundError(f"voice activity model not found: {path}")
        options = onnxruntime.SessionOptions()
        # One thread each: a window is tiny, and the face models have the other cores.
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros((1, _CONTEXT), np.float32)

    def probability(self, window: np.ndarray) -> float:
        x = np.concatenate([self._context, window.astype(np.float32).reshape(1, -1) / 32768], axis=1)
        out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._rate})
        self._context = x[:, -_CONTEXT:]
        return float(out[0, 0])


class VoiceAnalyzer:
    """Cuts chunks into 32 ms windows (holding a partial window until the next chunk) and says of each
    whether it is speech: on at `threshold`, off below `threshold - 0.15`, so one stretch of speech does not
    flicker between words."""

    def __init__(self, models_dir: Path, threshold: float):
        self._vad = SileroVad(models_dir / VAD_MODEL_FILE)
        self._on, self._off = threshold, max(0.0, threshold - HYSTERESIS)
        self._held = np.zeros(0, np.int16)
        self._held_at: tuple[float, float] = (0.0, 0.0)  # (mono, wall) of the first held sample
        self._speaking = False
        self._quiet = False  # the last window was below QUIET_DBFS
        self._next: float | None = None  # where the previous chunk ended (mono)

    def analyze(self, chunk: AudioChunk) -> list[AudioAnalysis]:
        if self._next is not None and abs(chunk.mono - self._next) > _GAP_S:
            self._restart()
        self._next = chunk.end_mono
        if not len(self._held):
            self._held_at = (chunk.mono, chunk.wall)
        samples = np.concatenate([self._held, chunk.samples]) if len(self._held) else chunk.samples
        results = []
        start = 0
        while start + WINDOW <= len(samples):
            window = samples[start:start + WINDOW]
            offset = start / SAMPLE_RATE
            level = level_dbfs(window)
            if level < QUIET_DBFS:
                probability = 0.0
                if not self._quiet:
                    self._vad.reset()
            else:
                probability = self._vad.probability(window)
            self._quiet = level < QUIET_DBFS
            self._speaking = probability >= (self._off if self._speaking else self._on)
            results.append(AudioAnalysis(
                self._held_at[0] + offset, self._held_at[1] + offset, WINDOW_S,
                round(level, 2), round(probability, 4), self._speaking,
            ))
            start += WINDOW
        self._held = samples[start:].copy()
        offset = start / SAMPLE_RATE
        self._held_at = (self._held_at[0] + offset, self._held_at[1] + offset)
        return results

    def _restart(self) -> None:
        self._vad.reset()
        self._held = np.zeros(0, np.int16)
        self._speaking = False
