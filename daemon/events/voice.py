"""The voice rules: speech heard, fused with the candidate's mouth.

They read the AudioAnalysis stream (one record per 32 ms window of sound) and what the frames said of the
mouth, both on the frames' monotonic clock, so the whole stays a pure function of the two streams:

- speech: the window is inside a stretch of speech (the voice stage's hysteresis).
- talking: speech while the candidate's mouth moves (it moved within other_voice.still_s: the mouth rule's
  own measure, so the candidate's pauses between words stay their own speech).
- other_voice: speech while the candidate's mouth has been still for still_s, or is out of view.

`speech` is the timeline's record of anyone speaking, not a flag: it is stored and reported, but not sent to
the supervisors as an alert and given no clip or snapshot (every utterance would be one); talking and
other_voice are the flags.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.config import OtherVoiceRule, TalkingRule
from daemon.events.conditions import CLEAR, Observation
from daemon.inference.analysis import AudioAnalysis

# Event types kept for the timeline only: stored and reported, never alerted, no evidence clip.
TIMELINE_ONLY = frozenset({"speech"})


@dataclass(frozen=True, slots=True)
class VoiceObservations:
    speech: Observation
    talking: Observation
    other_voice: Observation


class VoiceFusion:
    def __init__(self, talking: TalkingRule, other_voice: OtherVoiceRule):
        self._still_s = other_voice.still_s
        self._moving = f"std(mouth_openness over {talking.window_s:g} s) >= {talking.min_mouth_std:g}"
        self._last_moved: float | None = None  # mono of the last frame whose mouth moved
        self._mouth_std: float | None = None  # the spread it moved by

    def mouth(self, mono: float, moving: Observation) -> None:
        """What the mouth rule read off the frame at `mono`."""
        if moving.active:
            self._last_moved = mono
            self._mouth_std = (moving.evidence or {}).get("mouth_std")

    def observe(self, audio: AudioAnalysis) -> VoiceObservations:
        if not audio.speech:
            return VoiceObservations(CLEAR, CLEAR, CLEAR)
        heard = {"speech_probability": audio.speech_probability, "level_dbfs": audio.level_dbfs}
        speech = Observation(True, audio.speech_probability, heard | {"threshold": "voice activity"})
        since = None if self._last_moved is None else audio.mono - self._last_moved
        if since is not None and since <= self._still_s + 1e-6:
            talking = Observation(True, audio.speech_probability, heard | {
                "mouth_std": self._mouth_std,
                "threshold": f"speech, and {self._moving} within the last {self._still_s:g} s",
            })
            return VoiceObservations(speech, talking, CLEAR)
        mouth = "not seen moving" if since is None else f"still for {since:.1f} s"
        other = Observation(True, audio.speech_probability, heard | {
            "mouth": mouth,
            "threshold": f"speech, and no {self._moving} (or no mouth in view) for {self._still_s:g} s",
        })
        return VoiceObservations(speech, CLEAR, other)
