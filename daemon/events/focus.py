"""The report's focus figures: per-frame tallies of face present, attentive, looking away, eyes closed; and
per window of sound, speech and the sound's power.

Counted on every analysed frame, without onset or release (the events have those). Looking away (attention
off the screen to any side, attention.py) needs the calibrated region: the frames seen during calibration
are kept, without their landmarks, and counted once it is known.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import fields

from daemon.config import EyesClosedRule
from daemon.events.attention import Attention, Look, candidate_face, without_landmarks
from daemon.events.model import FocusCounts
from daemon.inference.analysis import AudioAnalysis, Face, FrameAnalysis


class FocusCounter:
    def __init__(self, attention: Attention, eyes_closed: EyesClosedRule):
        self._attention = attention
        self._max_openness = eyes_closed.max_openness
        self._pending: list[tuple[Face, bool]] = []
        self._tally: Counter[str] = Counter()
        self._power = 0.0

    @property
    def counts(self) -> FocusCounts:
        tallies = {f.name: self._tally[f.name] for f in fields(FocusCounts) if f.name != "sound_power"}
        return FocusCounts(**tallies, sound_power=self._power)

    def count(self, analysis: FrameAnalysis) -> None:
        tally = self._tally
        tally["frames"] += 1
        face = candidate_face(analysis)
        if face is None:
            return
        tally["face_present"] += 1
        eyes_shut = face.eye_openness is not None and face.eye_openness < self._max_openness
        if face.eye_openness is not None:
            tally["eyes_measured"] += 1
            tally["eyes_closed"] += eyes_shut
        if face.pose is None:
            return
        if self._attention.region is None:
            self._pending.append((without_landmarks(face), eyes_shut))
        else:
            self._count_look(self._attention.read(analysis), eyes_shut)

    def count_audio(self, audio: AudioAnalysis) -> None:
        self._tally["sound_windows"] += 1
        self._tally["speech_windows"] += audio.speech
        self._power += 10 ** (audio.level_dbfs / 10)

    def calibrated(self) -> None:
        """Count the frames that waited for the region."""
        for face, eyes_shut in self._pending:
            self._count_look(self._attention.look(face), eyes_shut)
        self._pending = []

    def _count_look(self, look: Look | None, eyes_shut: bool) -> None:
        away = look is not None and look.side is not None
        self._tally["pose_measured"] += 1
        self._tally["looking_away"] += away
        self._tally["attentive"] += not away and not eyes_shut
