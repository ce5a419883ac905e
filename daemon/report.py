"""The session report: what a supervisor and an exam board read, built only from the store's records.

Integrity score (README, "Integrity score"): for each event type, the flagged time is the union of its
events' intervals within the session; its deduction is 100 x weight x flagged / duration; the score is
100 minus the deductions, floored at 0. Anyone can recompute it from the event list.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from daemon.config import RulesConfig
from daemon.events.model import Event
from daemon.store.records import SessionRecord

REPORT_VERSION = 1


def build_report(session: SessionRecord, events: list[Event], rules: RulesConfig) -> dict:
    duration = max(session.duration, 0.0)
    session_end = session.started_at + duration
    by_type: dict[str, list[Event]] = {}
    for event in events:
        by_type.setdefault(event.type, []).append(event)

    deductions = []
    for event_type, typed in sorted(by_type.items()):
        flagged = _union_seconds(
            [(e.start, e.end if e.end is not None else session_end) for e in typed], session.started_at, session_end
        )
        weight = getattr(rules, event_type).weight
        share = flagged / duration if duration > 0 else 0.0
        deductions.append(
            {
                "type": event_type,
                "weight": weight,
                "flagged_seconds": round(flagged, 3),
                "share_of_session": round(share, 6),
                "points": round(100 * weight * share, 2),
                "event_ids": [e.id for e in typed],
            }
        )
    score = max(0.0, 100.0 - sum(d["points"] for d in deductions))
    return {
        "report_version": REPORT_VERSION,
        "session": asdict(session) | {"duration_seconds": round(duration, 3)},
        "integrity": {"score": round(score, 1), "deductions": deductions},
        "event_counts": {event_type: len(typed) for event_type, typed in sorted(by_type.items())},
        "events": [asdict(event) | {"duration_seconds": _rounded(event.duration)} for event in events],
    }


def write_report(report: dict, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True))
    tmp.replace(path)
    return path


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _union_seconds(intervals: list[tuple[float, float]], low: float, high: float) -> float:
    """Total length covered by the intervals, clipped to [low, high]; overlaps count once."""
    total, reach = 0.0, low
    for start, end in sorted(intervals):
        start, end = max(start, reach), min(end, high)
        if end > start:
            total += end - start
            reach = end
    return total
