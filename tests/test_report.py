"""The session report: the integrity score by hand, the JSON schema, and the HTML, CSV and PDF formats."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import zlib
from datetime import datetime
from pathlib import Path

import jsonschema
import pytest

from daemon.config import RulesConfig
from daemon.events.model import Event, FocusCounts, Neutral, SessionMetrics
from daemon.report import build_report, events_csv, render_report_html, render_report_pdf, write_reports
from daemon.store.records import SessionRecord

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "docs" / "report.schema.json").read_text())
T0 = 1_700_000_000.0


def validate(report: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(report)


def session(duration: float = 100.0, state: str = "completed", name: str = "Ada Lovelace") -> SessionRecord:
    end = T0 + duration
    return SessionRecord(
        id="20231114T221320-abc123", kiosk="kiosk-7", candidate_name=name, candidate_id="c-42",
        exam_id="math-101", notes="desk 4", state=state, started_at=T0,
        ended_at=None if state == "running" else end, last_seen_at=end, frames=int(duration * 15),
    )


def event(event_id: str, event_type: str, start: float, end: float | None, severity: str = "high",
          evidence: dict | None = None) -> Event:
    return Event(event_id, "20231114T221320-abc123", event_type, severity, T0 + start,
                 None if end is None else T0 + end, 0.8, evidence or {"threshold": "faces < 1", "faces": 0})


METRICS = SessionMetrics(
    FocusCounts(frames=1500, face_present=1400, pose_measured=1380, looking_away=150, attentive=1200,
                eyes_measured=1380, eyes_closed=40),
    Neutral(head_yaw=4.25, head_pitch=-8.5, gaze_yaw=3.0, gaze_pitch=-6.0, samples=45, at=T0 + 3.0),
)
EVENTS = [
    event("e1", "no_face", 10, 20),
    event("e2", "no_face", 15, 30),  # overlaps e1: 10-30 counts once, 20 s
    event("e3", "looking_away", 40, 44, "medium",
          {"crossed": ["head_yaw"], "offsets_deg": {"head_yaw": 35.2, "head_pitch": 1.0}, "limits_deg": {"head_yaw": 30.0},
           "threshold": "|head_yaw - neutral| > 30 deg"}),
    event("e4", "phone", 95, None),  # still open: counts up to the end of the session, 5 s
]


@pytest.fixture
def report() -> dict:
    return build_report(session(), EVENTS, RulesConfig(), METRICS)


# --- the score -------------------------------------------------------------------------------------


def test_score_deducts_flagged_share_times_severity_factor_and_weight(report):
    deductions = {d["type"]: d for d in report["integrity"]["deductions"]}

    # no_face: high (1.0) x 1.0 x 20 / 100; looking_away: medium (0.5) x 1.0 x 4 / 100; phone: 1.0 x 3.0 x 5 / 100.
    assert {t: (d["flagged_seconds"], d["points"]) for t, d in deductions.items()} == {
        "no_face": (20.0, 20.0), "looking_away": (4.0, 2.0), "phone": (5.0, 15.0),
    }
    assert deductions["no_face"]["event_ids"] == ["e1", "e2"] and deductions["no_face"]["events"] == 2
    assert (deductions["looking_away"]["severity"], deductions["looking_away"]["severity_factor"]) == ("medium", 0.5)
    assert [d["type"] for d in report["integrity"]["deductions"]] == ["no_face", "phone", "looking_away"]
    assert report["integrity"]["score"] == 63.0
    assert report["integrity"]["flagged_seconds"] == 29.0 and report["integrity"]["share_flagged"] == 0.29


def test_score_is_floored_at_zero_and_events_are_clipped_to_the_session():
    events = [event("e1", "phone", -50, 80), event("e2", "multiple_faces", 0, 200)]
    integrity = build_report(session(), events, RulesConfig())["integrity"]
    assert {d["type"]: d["flagged_seconds"] for d in integrity["deductions"]} == {"phone": 80.0, "multiple_faces": 100.0}
    assert integrity["score"] == 0.0


def test_score_follows_the_configured_weights_and_factors():
    rules = RulesConfig.model_validate({"no_face": {"weight": 2.0}, "severity_factors": {"high": 0.5}})
    integrity = build_report(session(), [event("e1", "no_face", 0, 10)], rules)["integrity"]
    assert integrity["deductions"][0]["points"] == 10.0  # 100 x 0.5 x 2.0 x 10 / 100
    assert integrity["severity_factors"] == {"low": 0.25, "medium": 0.5, "high": 0.5}


def test_empty_session_scores_100_and_a_zero_length_one_does_not_divide_by_zero():
    assert build_report(session(), [], RulesConfig())["integrity"]["score"] == 100.0
    assert build_report(session(duration=0.0), [event("e1", "no_face", 0, 0)], RulesConfig())["integrity"]["score"] == 100.0


# --- the JSON format -------------------------------------------------------------------------------


def test_report_carries_focus_shares_and_the_calibration(report):
    assert report["focus"] == {
        "frames": 1500, "face_present": 0.9333, "attentive": 0.8, "looking_away": 0.1, "eyes_closed": 0.0267,
        "speech": None, "sound_level_dbfs": None,  # no microphone
        "counts": {"frames": 1500, "face_present": 1400, "pose_measured": 1380, "looking_away": 150, "attentive": 1200,
                   "eyes_measured": 1380, "eyes_closed": 40, "sound_windows": 0, "speech_windows": 0, "sound_power": 0.0},
    }
    assert report["calibration"] == {
        "calibrated": True, "duration_s": 3.0, "min_samples": 10, "samples": 45, "ended_at": T0 + 3.0,
        "ended_offset_seconds": 3.0,
        "neutral_deg": {"head_yaw": 4.25, "head_pitch": -8.5, "gaze_yaw": 3.0, "gaze_pitch": -6.0},
    }
    assert report["event_counts"] == {"no_face": 2, "looking_away": 1, "phone": 1}
    assert [e["start_offset_seconds"] for e in report["events"]] == [10.0, 15.0, 40.0, 95.0]
    assert report["events"][3]["duration_seconds"] is None


def test_focus_shares_are_null_where_nothing_was_measured():
    focus = build_report(session(), [], RulesConfig(), SessionMetrics(FocusCounts(frames=10, face_present=10)))["focus"]
    assert (focus["face_present"], focus["attentive"], focus["looking_away"], focus["eyes_closed"]) == (1.0, None, None, None)


@pytest.mark.parametrize("state", ["completed", "interrupted", "running"])
def test_reports_match_the_documented_schema(report, state):
    validate(report)
    validate(build_report(session(state=state), [], RulesConfig()))
    validate(build_report(session(state=state), EVENTS, RulesConfig(), METRICS) | {"source": {"video": "a.mp4", "fps": 25.0, "frames": 9}})


def test_schema_refuses_what_the_report_never_holds(report):
    report["events"][0]["type"] = "sneezing"
    with pytest.raises(jsonschema.ValidationError):
        validate(report)


# --- CSV -------------------------------------------------------------------------------------------


def test_csv_has_one_row_per_event_with_local_times_offsets_and_plain_evidence(report):
    rows = list(csv.DictReader(io.StringIO(events_csv(report))))

    assert [row["id"] for row in rows] == ["e1", "e2", "e3", "e4"]
    first = rows[0]
    assert (first["type"], first["event"], first["severity"]) == ("no_face", "No face", "high")
    assert datetime.fromisoformat(first["start"]).timestamp() == T0 + 10  # local, with its UTC offset
    assert datetime.fromisoformat(first["end"]).utcoffset() is not None
    assert (first["start_offset_s"], first["end_offset_s"], first["duration_s"]) == ("10.000", "20.000", "10.000")
    assert first["evidence"] == "no face in view for 10.0 s"
    assert "{" not in "".join(row["evidence"] for row in rows)  # words, not JSON
    assert (rows[3]["end"], rows[3]["duration_s"]) == ("", "")


def test_report_times_are_in_the_kiosk_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        report = build_report(session(), EVENTS, RulesConfig(), METRICS)
        html, pdf_text = render_report_html(report), render_report_pdf(report)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert report["session"]["started_at_iso"] == "2023-11-14T23:13:20.000+01:00"
    assert report["events"][0]["start_iso"] == "2023-11-14T23:13:30.000+01:00"
    assert "2023-11-14 23:13:20 CET" in html
    assert pdf_text.startswith(b"%PDF")


# --- HTML ------------------------------------------------------------------------------------------


def test_html_draws_one_bar_per_event_on_one_lane_per_type(report):
    html = render_report_html(report)

    assert html.count('class="bar"') == 4
    assert [m for m in re.findall(r'class="lane-label"[^>]*>([^<]+)<', html)] == ["No face", "Looking away", "Phone"]
    assert "63.0" in html and "Ada Lovelace" in html and "80.0 %" in html  # score, candidate, attentive
    assert "|head_yaw - neutral| &gt; 30 deg" in html
    assert "<script" not in html


def test_html_bar_positions_follow_the_session_time(report):
    html = render_report_html(report)
    bars = [(float(x), float(w)) for x, w in re.findall(r'<rect class="bar" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"', html)]
    # Plot from 150 to 984 user units over 100 s: 8.34 units a second.
    assert bars[0] == pytest.approx((150 + 83.4, 83.4))
    assert bars[3] == pytest.approx((150 + 95 * 8.34, 5 * 8.34))


def test_html_escapes_what_people_typed():
    hostile = build_report(session(name='<script>alert("x")</script>'), [], RulesConfig())
    html = render_report_html(hostile)
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "No event in this session." in html


def test_html_can_link_its_stylesheet_for_a_page_without_inline_styles(report):
    html = render_report_html(report, stylesheet_url="/static/report.css")
    assert '<link rel="stylesheet" href="/static/report.css">' in html and "<style>" not in html
    assert "<style>" in render_report_html(report)


# --- PDF and files ---------------------------------------------------------------------------------


def test_pdf_is_a_pdf_with_pages(report):
    pdf = render_report_pdf(report | {"events": report["events"] * 30})  # long enough for a second page
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type /Page\b", pdf)) >= 2


def drawn_characters(pdf: bytes) -> set[str]:
    """The characters the PDF's embedded fonts can show: their ToUnicode maps (glyph -> code point)."""
    characters = set()
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        try:
            text = zlib.decompress(stream)
        except zlib.error:
            text = stream  # stored uncompressed
        if b"beginbfchar" in text:
            characters |= {chr(int(code, 16)) for code in re.findall(rb"<[0-9A-F]{4}> <([0-9A-F]{4})>", text)}
    return characters


def test_pdf_prints_names_outside_latin_1():
    pdf = render_report_pdf(build_report(session(name="Zoë Łukasiewicz"), [], RulesConfig()))
    # Drawn with real glyphs of an embedded Unicode font (DejaVu Sans), not Helvetica's "?".
    assert set("ZoëŁukasiewicz") <= drawn_characters(pdf)
    assert b"DejaVuSans" in pdf


def test_write_reports_writes_every_format_and_no_temporary_file(report, tmp_path):
    written = write_reports(report, tmp_path / "out")

    assert {kind: path.name for kind, path in written.items()} == {
        "json": "report.json", "html": "report.html", "csv": "report.csv", "pdf": "report.pdf",
    }
    assert json.loads(written["json"].read_text()) == report
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written.values())
