"""The session report as data (the JSON format, schema in docs/report.schema.json), built only from the
store's records: the session, its events, what the rules measured (focus tallies, calibration, and with
identity checks on the reference and the similarity over time) and the exam board's review (verdicts,
notes, remarks, and the score recomputed over the confirmed flags)."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import datetime

from daemon.config import RulesConfig
from daemon.events.model import Event, FocusCounts, Neutral, SessionMetrics
from daemon.events.rules import EVENT_TYPES
from daemon.report.score import integrity
from daemon.report.wording import describe_evidence
from daemon.review import ReviewState, SessionReview, Verdict
from daemon.store import identity as identity_store
from daemon.store.db import StoreReader
from daemon.store.identity import StoredReference
from daemon.store.records import ReviewEntry, SessionRecord

REPORT_VERSION = 3


REVIEWED_BASIS = (
    "the same formula over the flags a reviewer confirmed: dismissed flags, and flags without a verdict yet,"
    " deduct nothing"
)


def build_report(
    session: SessionRecord, events: list[Event], rules: RulesConfig, metrics: SessionMetrics | None = None,
    review: SessionReview | None = None,
    identity: dict | None = None,
) -> dict:
    """`identity`: the section `identity_section` makes, for a session with identity checks."""
    metrics = metrics or SessionMetrics()
    review = review or SessionReview.of([])
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
                "review": _verdict(review, event.id),
                "start_iso": iso_local(event.start), "end_iso": iso_local(event.end),
                "description": describe_evidence(event),
            }
            for event in events
        ],
        "review": review_section(review, events, rules, session.started_at, duration, assessment.assessable),
    } | ({"identity": identity} if identity is not None else {})


def review_section(review: SessionReview, events: list[Event], rules: RulesConfig, started_at: float,
                   duration: float, assessable: bool = True) -> dict:
    """The review as it stands; the reviewed score once anything was reviewed (provisional while flags wait)."""
    confirmed = review.confirmed(events)
    reviewed = review.state is not ReviewState.NOT_REVIEWED
    return {
        "state": review.state.value,
        "marked_by": review.marked.reviewer if review.marked else None,
        "marked_at": review.marked.at if review.marked else None,
        "flags": {
            "confirmed": len(confirmed),
            "dismissed": sum(review.verdict(e.id) is Verdict.DISMISSED for e in events),
            "pending": len(review.pending(events)),
        },
        "reviewed_integrity": integrity(confirmed, rules, started_at, duration, scored=assessable) if reviewed else None,
        "reviewed_basis": REVIEWED_BASIS,
        "remarks": _said(review.remarks) if review.remarks else None,
        "notes": [_said(note) for note in review.notes],
        "history": [_said(entry) | {"kind": entry.kind, "event_id": entry.event_id, "value": entry.value}
                    for entry in review.history],
    }


def _said(entry: ReviewEntry) -> dict:
    return {"text": entry.text, "reviewer": entry.reviewer, "at": entry.at}


def _verdict(review: SessionReview, event_id: str) -> dict | None:
    entry = review.verdicts.get(event_id)
    if entry is None:
        return None
    return {"verdict": entry.value, "note": entry.text, "reviewer": entry.reviewer, "at": entry.at,
            "changes": len(review.history_of(event_id)) - 1}


def iso_local(epoch: float | None) -> str | None:
    """ISO 8601 in the kiosk's time zone, with its offset: readable, and still one exact moment."""
    return None if epoch is None else datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="milliseconds")


def load_report(reader: StoreReader, session_id: str, rules: RulesConfig) -> dict | None:
    """The report of a stored session (running or finished), or None if there is no such session."""
    session = reader.session(session_id)
    if session is None:
        return None
    reference = reader.read(identity_store.reference, session_id)
    identity = None if reference is None else identity_section(
        session, reference, reader.read(identity_store.similarities, session_id)
    )
    return build_report(
        session, reader.events(session_id), rules, reader.metrics(session_id), reader.review(session_id), identity
    )


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
        # Of the sound heard (None without sound): the share of it that was speech, and its mean level.
        "speech": round(focus.speech_windows / focus.sound_windows, 4) if focus.sound_windows else None,
        "sound_level_dbfs": sound_level(focus),
        "counts": asdict(focus),
    }


def sound_level(focus: FocusCounts) -> float | None:
    """The mean level of the sound heard (its mean power), in dBFS; None without sound."""
    if not focus.sound_windows:
        return None
    return round(max(-100.0, 10 * math.log10(max(focus.sound_power / focus.sound_windows, 1e-10))), 1)


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
