"""The daemon's "audio" part: the microphone (daemon/capture/microphone.py) on its own thread, each chunk
through the voice stage (daemon/inference/voice.py) to the session's rules, and to the recorder for the
recording's sound track unless [audio] record is false.

Its figures (the status page's card and /metrics): whether the microphone is there, the sound level over
the last second in dBFS, and the share of the last minute that was speech.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.capture.audio import AudioChunk, MicrophoneSource
from daemon.capture.grabber import Backoff
from daemon.capture.microphone import Microphone
from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.config import AudioConfig
from daemon.events.model import Instant
from daemon.inference.voice import SILENCE_DBFS, WINDOW_S, VoiceAnalyzer
from daemon.parts import Figure, PartStatus

if TYPE_CHECKING:
    from daemon.recording.recorder import Recorder
    from daemon.session import SessionController
    from daemon.store.records import SessionRecord

LEVEL_S = 1.0  # the level figure: mean power over this long
SPEECH_SHARE_S = 60.0  # the speech figure: share of this long


class AudioPart:
    name = "audio"

    def __init__(
        self, config: AudioConfig, models_dir: Path, sessions: SessionController, recorder: Recorder | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ):
        self._sessions = sessions
        self._recorder = recorder if config.record else None
        self._clock = clock
        self._voice = VoiceAnalyzer(models_dir, config.speech_threshold)
        self._microphone = Microphone(
            lambda: MicrophoneSource(config.device, config.timeout_s, clock),
            name=config.device, timeout_s=config.timeout_s, silent_s=config.silent_s,
            backoff=Backoff(config.reopen_min_s, config.reopen_max_s),
            on_sound=self._heard, on_online=self._online_changed, clock=clock,
        )
        self._lock = threading.Lock()
        # (speech, power) of the recent windows, for the figures.
        self._recent: deque[tuple[bool, float]] = deque(maxlen=round(SPEECH_SHARE_S / WINDOW_S))

    def start(self) -> None:
        self._microphone.start()

    def stop(self) -> None:
        self._microphone.stop()

    def session_started(self, session: SessionRecord) -> None:
        # A session started while the microphone is lost has its microphone_lost event from its start.
        if not self._microphone.online:
            self._sessions.observe_microphone(False, Instant(self._clock.monotonic(), self._clock.time()))

    def session_stopped(self, session: SessionRecord) -> None:
        pass

    def status(self) -> PartStatus:
        stats = self._microphone.stats
        with self._lock:
            recent = list(self._recent)
        level_windows = recent[-round(LEVEL_S / WINDOW_S):]
        power = sum(p for _, p in level_windows) / len(level_windows) if level_windows else 0.0
        level = round(max(SILENCE_DBFS, 10 * math.log10(power)), 1) if power > 0 else None
        speech = round(100 * sum(s for s, _ in recent) / len(recent), 1) if recent else None
        offline = not stats.online
        state, reason = ("ok", None) if stats.online else ("failed", stats.error or "no sound")
        since = stats.seconds_since_last_sound
        return PartStatus(self.name, state, reason, (
            Figure("device", "Device", stats.device, kind="info"),
            Figure("online", "Microphone online", stats.online, help="1 while the microphone delivers sound"),
            Figure("level_dbfs", "Sound level", level, "dBFS", help="Mean sound level over the last second",
                   stale=offline),
            Figure("speech_percent", "Speech, last minute", speech, "%",
                   help="Share of the last minute of sound that was speech", stale=offline),
            Figure("seconds", "Sound heard", round(stats.seconds, 1), "s", kind="counter",
                   help="Seconds of sound delivered by the microphone"),
            Figure("reconnects", "Reconnects", stats.reconnects, kind="counter", help="Times the microphone was reopened"),
            Figure("last_sound_age_seconds", "Last sound", None if since is None else round(since, 3), "s ago",
                   help="Seconds since the microphone delivered sound"),
        ), title="Microphone")

    def _heard(self, chunk: AudioChunk) -> None:
        windows = self._voice.analyze(chunk)
        self._sessions.observe_audio(windows)
        if self._recorder:
            self._recorder.offer_audio(chunk)
        with self._lock:
            self._recent.extend((w.speech, 10 ** (w.level_dbfs / 10)) for w in windows)

    def _online_changed(self, online: bool, mono: float, wall: float) -> None:
        self._sessions.observe_microphone(online, Instant(mono, wall))
