"""The session report as data (the JSON format, schema in docs/report.schema.json), built only from the
store's records: the session, its events and what the rules measured (focus tallies, calibration)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from daemon.config import RulesConfig
from daemon.events.model import Event, FocusCounts, Neutral, SessionMetrics
from daemon.events.rules import EVENT_TYPES
from daemon.report.score import integrity
from daemon.report.wording import describe_evidence
from daemon.store.db import StoreReader
from daemon.store.records import SessionRecord

REPORT_VERSION = 3


def build_report(
    session: SessionRecord, events: list[Event], rules: RulesConfig, metrics: SessionMetrics | None = None
) -> dict:
    metrics = metrics or SessionMetrics()
    duration = session.duration
    assessment = session.assessment
    counts = {event_type: sum(e.type == event_type for e in events) for event_type in EVENT_TYPES}
    return {
        "report_version": REPORT_VERSION,
        "session": asdict(session) | {
            "duration_seconds": round(duration, 3), "not_checked": list(session.not_checked),
            "started_at_iso": iso_local(session.started_at), "ended_at_iso": iso_local(session.ended_at),
        },
        "assessment": asdict(assessment),
        "integrity": integrity(events, rules, session.started_at, duration, scored=assessment.assessable),
        "focus": focus_figures(metrics.focus),
        "calibration": calibration(metrics.neutral, session, rules),
        "event_counts": {event_type: n for event_type, n in counts.items() if n},
        "events": [
            asdict(event) | {
                "start_offset_seconds": round(event.start - session.started_at, 3),
                "duration_seconds": None if event.duration is None else round(event.duration, 3),
                "start_iso": iso_local(event.start), "end_iso": iso_local(event.end),
                "description": describe_evidence(event),
            }
            for event in events
        ],
    }


def iso_local(epoch: float | None) -> str | None:
    """ISO 8601 in the kiosk's time zone, with its offset: readable, and still one exact moment."""
    return None if epoch is None else datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds")


def load_report(reader: StoreReader, session_id: str, rules: RulesConfig) -> dict | None:
    """The report of a stored session (running or finished), or None if there is no such session."""
    session = reader.session(session_id)
    if session is None:
        return None
    return build_report(session, reader.events(session_id), rules, reader.metrics(session_id))


def focus_figures(focus: FocusCounts) -> dict:
    """Shares of the analysed frames; None where the analyzer never measured what a share needs."""

    def share(count: int, measured: int) -> float | None:
        return round(count / focus.frames, 4) if focus.frames and measured else None

    return {
        "frames": focus.frames,
        "face_present": share(focus.face_present, focus.frames),
        "attentive": share(focus.attentive, focus.pose_measured),
        "looking_away": share(focus.looking_away, focus.pose_measured),
        "eyes_closed": share(focus.eyes_closed, focus.eyes_measured),
        "counts": asdict(focus),
    }


def calibration(neutral: Neutral | None, session: SessionRecord, rules: RulesConfig) -> dict:
    window = {"duration_s": rules.calibration.duration_s, "min_samples": rules.calibration.min_samples}
    if neutral is None:
        return {"calibrated": False, **window}
    return {
        "calibrated": True,
        **window,
        "samples": neutral.samples,
        "ended_at": neutral.at,
        "ended_offset_seconds": round(neutral.at - session.started_at, 3),
        "neutral_deg": {
            angle: None if value is None else round(value, 2)
            for angle, value in (
                ("head_yaw", neutral.head_yaw), ("head_pitch", neutral.head_pitch),
                ("gaze_yaw", neutral.gaze_yaw), ("gaze_pitch", neutral.gaze_pitch),
            )
        },
    }
