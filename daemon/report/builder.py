"""The session report as data (the JSON format, schema in docs/report.schema.json), built only from the
store's records: the session, its events and what the rules measured (focus tallies, calibration, and with
identity checks on the reference and the similarity over time)."""

from __future__ import annotations

from dataclasses import asdict

from daemon.config import RulesConfig
from daemon.events.model import Event, FocusCounts, Neutral, SessionMetrics
from daemon.events.rules import EVENT_TYPES
from daemon.report.score import integrity
from daemon.store import identity as identity_store
from daemon.store.db import StoreReader
from daemon.store.identity import StoredReference
from daemon.store.records import SessionRecord

REPORT_VERSION = 2


def build_report(
    session: SessionRecord, events: list[Event], rules: RulesConfig, metrics: SessionMetrics | None = None,
    identity: dict | None = None,
) -> dict:
    """`identity`: the section `identity_section` makes, for a session with identity checks."""
    metrics = metrics or SessionMetrics()
    duration = max(session.duration, 0.0)
    counts = {event_type: sum(e.type == event_type for e in events) for event_type in EVENT_TYPES}
    return {
        "report_version": REPORT_VERSION,
        "session": asdict(session) | {"duration_seconds": round(duration, 3)},
        "integrity": integrity(events, rules, session.started_at, duration),
        "focus": focus_figures(metrics.focus),
        "calibration": calibration(metrics.neutral, session, rules),
        "event_counts": {event_type: n for event_type, n in counts.items() if n},
        "events": [
            asdict(event) | {
                "start_offset_seconds": round(event.start - session.started_at, 3),
                "duration_seconds": None if event.duration is None else round(event.duration, 3),
            }
            for event in events
        ],
    } | ({"identity": identity} if identity is not None else {})


def load_report(reader: StoreReader, session_id: str, rules: RulesConfig) -> dict | None:
    """The report of a stored session (running or finished), or None if there is no such session."""
    session = reader.session(session_id)
    if session is None:
        return None
    reference = reader.read(identity_store.reference, session_id)
    identity = None if reference is None else identity_section(
        session, reference, reader.read(identity_store.similarities, session_id)
    )
    return build_report(session, reader.events(session_id), rules, reader.metrics(session_id), identity)


def identity_section(
    session: SessionRecord, reference: StoredReference, similarities: list[tuple[float, float]]
) -> dict:
    """Who the session compared against and how close the candidate stayed: the reference (never its vector),
    and the similarity over time (offsets in seconds from the session's start)."""
    return {
        "reference": {
            "source": reference.source, "model": reference.model, "samples": reference.samples,
            "taken_at": reference.taken_at, "taken_offset_seconds": round(reference.taken_at - session.started_at, 3),
            "threshold": reference.threshold, "photo": reference.photo, "deleted_at": reference.deleted_at,
        },
        "similarity": [[round(at - session.started_at, 3), round(value, 4)] for at, value in similarities],
    }


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
