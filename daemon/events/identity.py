"""Identity continuity: the person sitting the exam is the person who checked in.

The reference is given at the start (a reference photo's embedding) or taken at check-in: the session's
first `reference_samples` embeddings of a face that can be judged (the inference stage only embeds such
faces) that agree with each other at `threshold`; one that disagrees starts the check-in again from it, so
a reference is never the mean of two people. From then on each new embedding is compared with the
reference: below `threshold` the condition holds until the next embedding. An embedding older than
`max_age_s` says nothing, so a face turned away or too small is never a mismatch, and the rule's
onset_s/release_s (hysteresis, as every rule) decide on the run of embeddings.

`IdentityCheck` is the identity_mismatch condition; it also hands the session the reference once taken
(`take_reference`) and the similarity figures for the report's timeline (`take_similarities`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from daemon.config import IdentityConfig
from daemon.events.conditions import CLEAR, Observation, past_lower
from daemon.inference.analysis import FrameAnalysis, IdentitySample
from daemon.inference.face_embedding import similarity

CHECK_IN, PHOTO = "check-in", "photo"


@dataclass(frozen=True, slots=True)
class IdentityReference:
    """Whom the session compares against: a unit vector, where it came from and what it was taken on."""

    embedding: np.ndarray  # float32 unit vector
    source: str  # CHECK_IN or PHOTO
    samples: int  # embeddings averaged
    at: float  # wall-clock seconds: when it was taken
    crop: np.ndarray | None = None  # the aligned face crop it was taken on (the best-seen of the samples)


@dataclass(frozen=True, slots=True)
class SimilaritySample:
    at: float  # wall-clock seconds of the frame the embedding was taken on
    similarity: float


class IdentityCheck:
    def __init__(self, config: IdentityConfig, reference: IdentityReference | None = None):
        self._config = config
        self.reference = reference
        self._check_in: list[IdentitySample] = []
        self._last_mono: float | None = None  # the frame time of the last embedding read
        self._latest: SimilaritySample | None = None
        self._sample: IdentitySample | None = None
        self._untaken_reference = False
        self._untaken: list[SimilaritySample] = []

    def __call__(self, analysis: FrameAnalysis) -> Observation:
        sample, taken_mono = analysis.identity, analysis.identity_mono
        if sample is None or taken_mono is None or analysis.mono - taken_mono > self._config.max_age_s + 1e-6:
            return CLEAR
        if taken_mono != self._last_mono:
            self._last_mono = taken_mono
            self._read(sample, analysis.wall - (analysis.mono - taken_mono))
        latest = self._latest
        if self.reference is None or latest is None or latest.similarity >= self._config.threshold:
            return CLEAR
        assert self._sample is not None
        return Observation(True, past_lower(latest.similarity, self._config.threshold), {
            "similarity": round(latest.similarity, 3), "reference": self.reference.source,
            "eye_distance_px": round(self._sample.eye_distance_px, 1), "yaw_deg": round(self._sample.yaw_deg, 1),
            "limit": self._config.threshold, "threshold": f"similarity to the reference < {self._config.threshold:g}",
        })

    def _read(self, sample: IdentitySample, at: float) -> None:
        if self.reference is None:
            self._check_in_with(sample, at)
            return
        self._sample = sample
        self._latest = SimilaritySample(at, similarity(self.reference.embedding, sample.embedding))
        self._untaken.append(self._latest)

    def _check_in_with(self, sample: IdentitySample, at: float) -> None:
        threshold = self._config.threshold
        if any(similarity(sample.embedding, earlier.embedding) < threshold for earlier in self._check_in):
            self._check_in.clear()  # two people: start again from the one in view now
        self._check_in.append(sample)
        if len(self._check_in) < self._config.reference_samples:
            return
        mean = np.mean([s.embedding for s in self._check_in], axis=0).astype(np.float32)
        best = max(self._check_in, key=lambda s: s.eye_distance_px)
        self.reference = IdentityReference(mean / np.linalg.norm(mean), CHECK_IN, len(self._check_in), at, best.crop)
        self._untaken_reference = True
        self._check_in.clear()

    def take_reference(self) -> IdentityReference | None:
        """The reference check-in has just taken, once (the session stores it)."""
        if not self._untaken_reference:
            return None
        self._untaken_reference = False
        return self.reference

    def take_similarities(self) -> list[SimilaritySample]:
        """The similarity figures since the last call (the session stores them with its progress)."""
        taken, self._untaken = self._untaken, []
        return taken
