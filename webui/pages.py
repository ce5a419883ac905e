"""The HTML pages: status, live view, sessions, the start/stop form and each session's report."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    send_file,
    url_for,
)

from daemon.events.identity import IdentityReference
from daemon.inference.reference_photo import MAX_REFERENCE_PHOTO_BYTES, ReferencePhotoError
from daemon.report import (
    events_csv,
    load_report,
    render_report_html,
    render_report_pdf,
    render_timeline_svg,
    report_css,
)
from daemon.report import view as report_view
from daemon.session import SessionError
from daemon.store.identity import REFERENCE_PHOTO
from daemon.store.records import CandidateInfo, MediaRecord
from webui.forms import StartSessionForm

log = logging.getLogger(__name__)

bp = Blueprint("pages", __name__)

# A running session's page reloads itself this often, so new events show up.
RUNNING_REFRESH_S = 5


def backend():
    return current_app.extensions["proctord_backend"]


def report_for(session_id: str) -> dict:
    report = load_report(backend().reader, session_id, backend().rules)
    if report is None:
        abort(404, description=f"No session {session_id!r}.")
    return report


@bp.get("/")
def status():
    return render_template("status.html", status=backend().status())


@bp.get("/live")
def live():
    return render_template("live.html", interval_ms=round(1000 / current_app.extensions["proctord_live"].max_fps))


@bp.get("/live.jpg")
def live_jpeg():
    picture = current_app.extensions["proctord_live"].jpeg()
    if picture is None:
        abort(503, description="No frame analysed yet.")
    return Response(picture, mimetype="image/jpeg")


@bp.get("/sessions")
def sessions():
    return render_template("sessions.html", sessions=backend().reader.sessions(), status=backend().status())


@bp.route("/sessions/new", methods=["GET", "POST"])
def start_session():
    form = StartSessionForm()
    if not form.validate_on_submit():
        return _start_form(form, None), 400 if form.errors else 200
    info = CandidateInfo(form.candidate_name.data, form.candidate_id.data, form.exam_id.data, form.notes.data)
    upload = form.reference_photo.data
    try:
        if upload:
            reference = _reference(upload.read(MAX_REFERENCE_PHOTO_BYTES + 1))
            started = backend().start_session(info, reference)
        else:
            started = backend().start_session(info)
    except ReferencePhotoError as exc:
        return _start_form(form, f"Reference photo refused: {exc}."), 400
    except SessionError as exc:
        return _start_form(form, f"{exc}: stop it first."), 409
    except (OSError, sqlite3.Error) as exc:  # a full disk, a failing SD card: said, not a 500
        log.error("the session could not be started: %s", exc)
        return _start_form(form, f"The kiosk could not store the session: {exc}"), 503
    flash(f"Session {started.id} started.")
    return redirect(url_for("pages.session", session_id=started.id))


def _start_form(form: StartSessionForm, error: str | None) -> str:
    identity_checks = backend().read_reference_photo is not None
    return render_template("start.html", form=form, error=error, identity_checks=identity_checks)


def _reference(photo: bytes) -> IdentityReference:
    read = backend().read_reference_photo
    if read is None:
        raise ReferencePhotoError("identity checks are off on this kiosk (identity.enabled)")
    return read(photo)


@bp.post("/sessions/stop")
def stop_session():
    try:
        stopped = backend().stop_session()
    except SessionError as exc:
        abort(409, description=f"Nothing to stop: {exc}.")
    flash(f"Session {stopped.id} stopped.")
    return redirect(url_for("pages.session", session_id=stopped.id))


@dataclass(frozen=True, slots=True)
class SessionEvidence:
    """The session's files still on disk: its recording segments, each event's clip and snapshot, and the
    identity reference photo (when kept)."""

    segments: list[MediaRecord]
    clips: dict[str, MediaRecord]  # by event id
    snapshots: dict[str, MediaRecord]
    reference_photo: MediaRecord | None


def evidence_for(session_id: str) -> SessionEvidence:
    on_disk = [m for m in backend().reader.media(session_id) if (backend().recordings_dir / m.name).is_file()]
    by_event = {kind: {m.event_id: m for m in on_disk if m.kind == kind} for kind in ("clip", "snapshot")}
    photo = next((m for m in on_disk if m.kind == REFERENCE_PHOTO), None)
    return SessionEvidence([m for m in on_disk if m.kind == "segment"], by_event["clip"], by_event["snapshot"], photo)


@bp.get("/sessions/<session_id>")
def session(session_id: str):
    report = report_for(session_id)
    running = report["session"]["state"] == "running"
    return render_template(
        "session.html", report=report, timeline_svg=render_timeline_svg(report_view.timeline(report)),
        refresh_s=RUNNING_REFRESH_S if running else None, evidence=evidence_for(session_id),
    )


@bp.get("/sessions/<session_id>/media/<file>")
def media(session_id: str, file: str):
    """A recorded file of the session, only if the store knows it (no path from the request reaches the disk).
    Served with range support, so a browser can seek in a clip."""
    known = {m.name: m for m in backend().reader.media(session_id)}
    record = known.get(f"{session_id}/{file}")
    path = backend().recordings_dir / record.name if record else None
    if path is None or not path.is_file():
        abort(404, description=f"No file {file!r} in session {session_id!r}.")
    return send_file(path, mimetype=_MEDIA_TYPES[path.suffix], conditional=True, max_age=0)


_MEDIA_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg"}


@bp.get("/sessions/<session_id>/report.html")
def report_html(session_id: str):
    """The printable report (daemon/report), its stylesheet linked so the page's CSP allows it."""
    html = render_report_html(report_for(session_id), stylesheet_url=url_for("pages.report_stylesheet"))
    return Response(html, mimetype="text/html")


@bp.get("/report.css")
def report_stylesheet():
    return Response(report_css(), mimetype="text/css")


@bp.get("/sessions/<session_id>/report.csv")
def report_csv(session_id: str):
    return _download(events_csv(report_for(session_id)), "text/csv", f"report-{session_id}.csv")


@bp.get("/sessions/<session_id>/report.pdf")
def report_pdf(session_id: str):
    return _download(render_report_pdf(report_for(session_id)), "application/pdf", f"report-{session_id}.pdf")


def _download(body: str | bytes, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
