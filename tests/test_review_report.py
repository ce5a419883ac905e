"""The report with the exam board's review (daemon.report): both the automatic score and the reviewed one
(recomputed over the confirmed flags only), the verdicts, notes and final remarks, in JSON (schema-valid),
HTML and PDF."""

from __future__ import annotations

import pytest
from test_report import drawn_characters, validate
from test_review_store import entry, finished_session, verdict

from daemon.config import RulesConfig
from daemon.report import load_report, render_report_html, render_report_pdf
from daemon.report.score import integrity
from daemon.review import NOTE_MAX, REMARKS_MAX
from daemon.store.db import Store, StoreReader


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "proctord.db", "kiosk-3")
    yield store
    store.close()


def test_an_unreviewed_report_says_so_and_has_no_reviewed_score(store):
    sid = finished_session(store)

    report = load_report(StoreReader(store.path), sid, RulesConfig())

    validate(report)
    assert report["review"]["state"] == "not_reviewed" and report["review"]["reviewed_integrity"] is None
    assert report["review"]["flags"] == {"confirmed": 0, "dismissed": 0, "pending": 2}
    assert [e["review"] for e in report["events"]] == [None, None]
    html = render_report_html(report)
    assert 'id="reviewed-score">—' in html and "not reviewed yet" in html


def test_the_reviewed_score_counts_the_confirmed_flags_only(store):
    sid = finished_session(store)  # ev-1 no_face (high) 4 s, ev-2 looking_away (medium) 2 s, of 100 s
    rules = RulesConfig()
    reader = StoreReader(store.path)
    store.add_review(verdict(sid, "ev-2", "dismissed", "reading the question sheet"))
    provisional = load_report(reader, sid, rules)["review"]
    assert provisional["state"] == "in_review" and provisional["flags"]["pending"] == 1
    assert provisional["reviewed_integrity"]["score"] == 100.0  # nothing confirmed yet

    store.add_review(verdict(sid, "ev-1", "confirmed", "chair empty"))
    store.add_review(entry(sid, "note", text="Lighting poor in the first minute."))
    store.add_review(entry(sid, "remarks", text="One absence of 4 s confirmed. Ωk to pass."))
    store.add_review(entry(sid, "state", "reviewed", by="board-2"))
    report = load_report(reader, sid, rules)

    validate(report)
    review = report["review"]
    events = reader.events(sid)
    assert report["integrity"] == integrity(events, rules, report["session"]["started_at"], 100.0)
    confirmed_only = integrity([e for e in events if e.id == "ev-1"], rules, report["session"]["started_at"], 100.0)
    assert review["reviewed_integrity"] == confirmed_only
    assert report["integrity"]["score"] < review["reviewed_integrity"]["score"] < 100  # the dismissed flag is back
    assert "confirmed" in review["reviewed_basis"]
    assert (review["state"], review["marked_by"]) == ("reviewed", "board-2")
    assert review["flags"] == {"confirmed": 1, "dismissed": 1, "pending": 0}
    assert review["remarks"]["text"] == "One absence of 4 s confirmed. Ωk to pass."
    assert [n["text"] for n in review["notes"]] == ["Lighting poor in the first minute."]
    assert [e["review"]["verdict"] for e in report["events"]] == ["confirmed", "dismissed"]
    assert [h["kind"] for h in review["history"]] == ["verdict", "verdict", "note", "remarks", "state"]

    html = render_report_html(report)
    assert f'id="automatic-score">{report["integrity"]["score"]:.1f}' in html
    assert f'id="reviewed-score">{review["reviewed_integrity"]["score"]:.1f}' in html
    assert "One absence of 4 s confirmed." in html and "reading the question sheet" in html
    assert "marked reviewed by board-2" in html
    assert "Ω" in drawn_characters(render_report_pdf(report))  # the remarks are drawn in the PDF


def test_the_longest_remarks_and_notes_fit_the_pdf(store):
    sid = finished_session(store)
    lines = "\n".join(f"Paragraph {i}: " + "the candidate looked at the window for a while. " * 8 for i in range(24))
    remarks = lines[:REMARKS_MAX]
    store.add_review(entry(sid, "remarks", text=remarks))
    store.add_review(entry(sid, "note", text="ẞ" * NOTE_MAX))

    report = load_report(StoreReader(store.path), sid, RulesConfig())
    pdf = render_report_pdf(report)

    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") >= 3  # the remarks run over pages
    assert "ẞ" in drawn_characters(pdf)
