"""The exam board's review page: the whole session recording as one player, the timeline and the flags that
seek it, a verdict (confirm / dismiss, with a note) per flag, session notes and the final remarks.

Every form posts and redirects back, so the page works without JavaScript (a flag's time then links to its
segment file at the moment, `segment.mp4#t=<s>`); webui/static/app.js plays the segments as one timeline
(a playlist, the next segment preloaded in a second video element) and makes bars and rows seek it. A
refused form is shown again with what was typed and the reason, status 400.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from daemon.accounts import Role
from daemon.report import render_timeline_svg
from daemon.report import view as report_view
from daemon.review import ReviewKind, ReviewRefused, ReviewState, SessionReview
from daemon.store.records import MediaRecord, ReviewEntry
from webui.auth import current_account, requires
from webui.forms import NoteForm, RemarksForm, VerdictForm
from webui.pages import backend, evidence_for, media_url, report_for

log = logging.getLogger(__name__)

bp = Blueprint("review", __name__)


@dataclass(frozen=True, slots=True)
class PlaylistItem:
    """One recording segment on the session's time axis."""

    media: MediaRecord
    start_s: float  # seconds from the session start
    duration_s: float

    def holds(self, offset: float) -> bool:
        return self.start_s <= offset < self.start_s + self.duration_s


def playlist(segments: list[MediaRecord], started_at: float) -> list[PlaylistItem]:
    # A segment's last frame lasts one frame more than its end says: without that, a seek to its very end
    # would find no segment; the next one's start is the bound.
    items = sorted(segments, key=lambda m: m.start)
    bounds = [m.start for m in items[1:]] + [items[-1].end + 1.0] if items else []
    return [PlaylistItem(m, round(m.start - started_at, 3), round(max(bound - m.start, 0.0), 3))
            for m, bound in zip(items, bounds, strict=True)]


def locate(items: list[PlaylistItem], offset: float) -> tuple[PlaylistItem, float] | None:
    """The segment showing the session's moment `offset`, and the time within it; a moment in a gap (the
    recording paused) gives the next segment's start."""
    for item in items:
        if item.holds(offset):
            return item, round(offset - item.start_s, 3)
        if item.start_s > offset:
            return item, 0.0
    return None


@bp.get("/sessions/<session_id>/review")
@requires(Role.REVIEWER)
def review(session_id: str):
    return _page(session_id)


@bp.post("/sessions/<session_id>/review/flags/<event_id>")
@requires(Role.REVIEWER)
def verdict(session_id: str, event_id: str):
    form = VerdictForm()
    if not form.validate_on_submit():
        return _page(session_id, {event_id: form})
    entry = _entry(session_id, ReviewKind.VERDICT, form.verdict.data, form.note.data or "", event_id)
    return _record(session_id, [entry], f"event-{event_id}", {event_id: form},
                   f"Flag {form.verdict.data}.")


@bp.post("/sessions/<session_id>/review/notes")
@requires(Role.REVIEWER)
def note(session_id: str):
    form = NoteForm()
    if not form.validate_on_submit():
        return _page(session_id, {"note": form})
    return _record(session_id, [_entry(session_id, ReviewKind.NOTE, "", form.text.data)], "notes", {"note": form},
                   "Note added.")


@bp.post("/sessions/<session_id>/review/remarks")
@requires(Role.REVIEWER)
def remarks(session_id: str):
    form = RemarksForm()
    if not form.validate_on_submit():
        return _page(session_id, {"remarks": form})
    current = backend().reader.review(session_id).remarks
    entries = []
    if form.remarks.data and (current is None or current.text != form.remarks.data):
        entries.append(_entry(session_id, ReviewKind.REMARKS, "", form.remarks.data))
    if form.action.data == "reviewed":
        entries.append(_entry(session_id, ReviewKind.STATE, ReviewState.REVIEWED.value, ""))
    elif form.action.data == "reopen":
        entries.append(_entry(session_id, ReviewKind.STATE, ReviewState.IN_REVIEW.value, ""))
    if not entries:
        return _page(session_id, {"remarks": form}, "Nothing to save: the remarks are empty or unchanged.")
    said = {"save": "Final remarks saved.", "reviewed": "Session marked reviewed.", "reopen": "Review reopened."}
    return _record(session_id, entries, "remarks", {"remarks": form}, said[form.action.data])


def _entry(session_id: str, kind: ReviewKind, value: str, text: str, event_id: str | None = None) -> ReviewEntry:
    return ReviewEntry(session_id, kind.value, event_id, value, text, current_account().name,
                       current_app.extensions["proctord_clock"].time())


def _record(session_id: str, entries: list[ReviewEntry], anchor: str, forms: dict[str, FlaskForm], done: str):
    """Commit the entries together; back to the page at `anchor`, or the page again with the reason."""
    try:
        backend().record_review(entries)
    except ReviewRefused as exc:
        return _page(session_id, forms, f"Not saved: {exc}.")
    except (OSError, sqlite3.Error) as exc:  # a full disk, a failing SD card: said, not a 500
        log.error("a review of session %s could not be stored: %s", session_id, exc)
        return _page(session_id, forms, f"The kiosk could not store the review: {exc}", 503)
    flash(done)
    return redirect(url_for("review.review", session_id=session_id, at=_player_at(), _anchor=anchor))


def _player_at() -> str | None:
    """Where the reviewer's player stood (app.js sends it with each form), so the page comes back there."""
    try:
        at = float(request.form.get("player_at", ""))
    except ValueError:
        return None
    return f"{at:.3f}" if 0 <= at < 1e7 else None


def _page(session_id: str, forms: dict[str, FlaskForm] | None = None, refusal: str | None = None,
          status: int | None = None):
    """The review page; with `forms` (refused ones, as typed) and the `refusal`, status 400 unless told."""
    report = report_for(session_id)
    session = report["session"]
    review: SessionReview = backend().reader.review(session_id)
    evidence = evidence_for(session_id)
    items = playlist(evidence.segments, session["started_at"])
    forms = forms or {}
    flag_ids = {e["id"] for e in report["events"]}
    segments_json = [{"url": media_url(item.media.file_name, session_id), "start": item.start_s,
                      "duration": item.duration_s} for item in items]
    return render_template(
        "review.html", report=report, review=review, evidence=evidence, playlist=items, segments_json=segments_json,
        timeline_svg=render_timeline_svg(report_view.timeline(report)),
        moments={e["id"]: locate(items, e["start_offset_seconds"]) for e in report["events"]},
        verdict_forms={e["id"]: forms.get(e["id"]) or VerdictForm(formdata=None) for e in report["events"]},
        note_form=forms.get("note") or NoteForm(formdata=None),
        remarks_form=forms.get("remarks") or RemarksForm(
            formdata=None, remarks=review.remarks.text if review.remarks else ""),
        # where the refusal is said: beside its form, or at the top for a flag the page does not show
        refusal=refusal, refused=next((key for key in forms if key in {"note", "remarks", *flag_ids}), None),
    ), status or (400 if forms else 200)
