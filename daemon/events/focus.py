"""The report's focus figures: per-frame tallies of face present, attentive, looking away, eyes closed.

Counted on every analysed frame, without onset or release (the events have those). Looking away needs
the neutral: the frames seen during calibration are kept as their angles and counted once it is known.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import fields

from daemon.config import EyesClosedRule
from daemon.events.conditions import LookingAway, candidate_face
from daemon.events.model import FocusCounts, Neutral
from daemon.inference.analysis import Face, FrameAnalysis


class FocusCounter:
    def __init__(self, looking_away: LookingAway, eyes_closed: EyesClosedRule):
        self._looking_away = looking_away
        self._max_openness = eyes_closed.max_openness
        self._pending: list[tuple[Face, bool]] = []
        self._tally: Counter[str] = Counter()

    @property
    def counts(self) -> FocusCounts:
        return FocusCounts(**{f.name: self._tally[f.name] for f in fields(FocusCounts)})

    def count(self, analysis: FrameAnalysis, neutral: Neutral | None) -> None:
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
        if neutral is None:  # keep what looking away reads of the face, not its 468 landmarks
            kept = Face(face.box, face.score, (), pose=face.pose, gaze=face.gaze, eye_openness=face.eye_openness)
            self._pending.append((kept, eyes_shut))
        else:
            self._count_pose(face, eyes_shut, neutral)

    def calibrated(self, neutral: Neutral) -> None:
        """Count the frames that waited for the neutral."""
        for face, eyes_shut in self._pending:
            self._count_pose(face, eyes_shut, neutral)
        self._pending = []

    def _count_pose(self, face: Face, eyes_shut: bool, neutral: Neutral) -> None:
        away = bool(self._looking_away.crossed(self._looking_away.offsets(face, neutral)))
        self._tally["pose_measured"] += 1
        self._tally["looking_away"] += away
        self._tally["attentive"] += not away and not eyes_shut
