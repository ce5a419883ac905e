"""Proctoring events as the rules raise them and the store keeps them."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    session_id: str
    type: str
    severity: str
    start: float  # wall-clock seconds: when the condition really began, not when it was confirmed
    end: float | None  # None while the event is open
    peak_confidence: float
    evidence: dict = field(default_factory=dict)

    def ended(self, end: float, peak_confidence: float, evidence: dict) -> Event:
        return replace(self, end=end, peak_confidence=peak_confidence, evidence=evidence)

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclass(frozen=True, slots=True)
class EventChange:
    """An event began (kind="start", end is None) or finished (kind="end")."""

    kind: Literal["start", "end"]
    event: Event
