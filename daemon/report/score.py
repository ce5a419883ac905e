"""The integrity score: 0 to 100, from how long each kind of event lasted, weighted by type and severity.

For each event type t (README, "Integrity score"):

    flagged(t) = seconds of the session covered by t's events (overlapping events of one type count once)
    points(t)  = 100 x severity_factor(severity(t)) x weight(t) x flagged(t) / session seconds
    score      = max(0, 100 - sum of points(t))

points are rounded to 2 decimals before they are added up, the score to 1 decimal, so the breakdown adds
up by hand. Weights and severity factors are the config's ([rules.<type>] weight and severity,
[rules.severity_factors]).
"""

from __future__ import annotations

from daemon.config import RulesConfig
from daemon.events.model import Event

FORMULA = (
    "points(type) = 100 x severity_factor x weight x flagged seconds / session seconds; "
    "score = max(0, 100 - sum of points)"
)


def union_seconds(intervals: list[tuple[float, float]], low: float, high: float) -> float:
    """Total length covered by the intervals, clipped to [low, high]; overlaps count once."""
    total, reach = 0.0, low
    for start, end in sorted(intervals):
        start, end = max(start, reach), min(end, high)
        if end > start:
            total += end - start
            reach = end
    return total


def integrity(
    events: list[Event], rules: RulesConfig, started_at: float, duration: float, scored: bool = True
) -> dict:
    """The score and its breakdown: one deduction per event type, with the events behind it. A session
    not `scored` (not assessable: too little of it was analysed) keeps its breakdown but gets no score."""
    session_end = started_at + duration

    def span(event: Event) -> tuple[float, float]:
        return event.start, event.end if event.end is not None else session_end  # open: up to now

    by_type: dict[str, list[Event]] = {}
    for event in events:
        by_type.setdefault(event.type, []).append(event)
    factors = rules.severity_factors.model_dump()
    deductions = []
    for event_type, typed in by_type.items():
        rule = getattr(rules, event_type)
        flagged = union_seconds([span(e) for e in typed], started_at, session_end)
        share = flagged / duration if duration > 0 else 0.0
        deductions.append({
            "type": event_type,
            "severity": rule.severity,
            "severity_factor": factors[rule.severity],
            "weight": rule.weight,
            "events": len(typed),
            "flagged_seconds": round(flagged, 3),
            "share_of_session": round(share, 6),
            "points": round(100 * factors[rule.severity] * rule.weight * share, 2),
            "event_ids": [e.id for e in typed],
        })
    deductions.sort(key=lambda d: (-d["points"], d["type"]))
    flagged_any = union_seconds([span(e) for e in events], started_at, session_end)
    return {
        "score": round(max(0.0, 100.0 - sum(d["points"] for d in deductions)), 1) if scored else None,
        "formula": FORMULA,
        "severity_factors": factors,
        "flagged_seconds": round(flagged_any, 3),
        "share_flagged": round(flagged_any / duration, 6) if duration > 0 else 0.0,
        "deductions": deductions,
    }
