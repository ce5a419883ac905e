"""Temporal evidence for objects: a sighting counts once it repeats at about the same place.

A phone held in view is seen pass after pass, often at a modest score; a stray box (a hand, a dark card, a
reflection) comes and goes. So each object pass's sightings are matched to the tracks of earlier passes
(same label, about the same place: `same_place`), and a track is reported only once it was seen in
`passes` of the last `window` passes, with the mean score of its sightings there. One pass alone, at any score, reports nothing
(unless passes = 1). A confirmed object is reported at the place it was last seen until the window no
longer holds `passes` sightings. Measured on the shared clips: bench/eval_stills.py.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from daemon.inference.analysis import Box, DetectedObject, Face
from daemon.inference.objects import CandidateCropDetector

# "About the same place": the box overlaps the last one (IoU >= 0.3, the phone-recall criterion's looser
# IoU), or its centre is within one box length of the last one's. The second part is for small phones: a
# hand moving 3 % of the frame between passes moves a 20-px phone by its whole size (IoU 0), which the
# jittered phone photos of bench/eval_stills.py show.
_SAME_PLACE_IOU = 0.3


def same_place(a: Box, b: Box) -> bool:
    if a.iou(b) >= _SAME_PLACE_IOU:
        return True
    dx, dy = (a.x + a.w / 2) - (b.x + b.w / 2), (a.y + a.h / 2) - (b.y + b.h / 2)
    return math.hypot(dx, dy) <= max(a.w, a.h, b.w, b.h)


@dataclass(slots=True)
class _Track:
    label: str
    box: Box  # where it was seen last
    scores: deque = field(default_factory=deque)  # one entry per pass of the window: the score, or None


class ObjectEvidence:
    def __init__(self, passes: int, window: int) -> None:
        if not 1 <= passes <= window:
            raise ValueError(f"need 1 <= passes <= window, got passes={passes}, window={window}")
        self._passes, self._window = passes, window
        self._tracks: list[_Track] = []

    def update(self, sightings: list[DetectedObject]) -> list[DetectedObject]:
        """Take one pass's sightings; return the objects the evidence now supports, best score first."""
        unmatched = sorted(sightings, key=lambda o: -o.score)
        for track in self._tracks:
            near = [o for o in unmatched if o.label == track.label and same_place(o.box, track.box)]
            best = max(near, key=lambda o: o.box.iou(track.box), default=None)
            if best is not None:
                unmatched.remove(best)
                track.box = best.box
                track.scores.append(best.score)
            else:
                track.scores.append(None)
        self._tracks += [_Track(o.label, o.box, deque([o.score])) for o in unmatched]
        for track in self._tracks:
            while len(track.scores) > self._window:
                track.scores.popleft()
        self._tracks = [t for t in self._tracks if any(score is not None for score in t.scores)]
        confirmed = []
        for track in self._tracks:
            seen = [score for score in track.scores if score is not None]
            if len(seen) >= self._passes:  # a pass that misses it in between does not end the evidence
                confirmed.append(DetectedObject(track.label, sum(seen) / len(seen), track.box))
        return sorted(confirmed, key=lambda o: -o.score)


class ConfirmedObjects:
    """An object pass (`CandidateCropDetector`) whose results go through the temporal evidence first."""

    def __init__(self, detector: CandidateCropDetector, evidence: ObjectEvidence) -> None:
        self._detector, self._evidence = detector, evidence

    def detect(self, image_bgr: np.ndarray, faces: tuple[Face, ...] = ()) -> list[DetectedObject]:
        return self._evidence.update(self._detector.detect(image_bgr, faces))
