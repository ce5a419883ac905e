"""The HTML pages: status, live view, sessions, the start/stop form and each session's report.

Each route says who may use it (webui/auth.py, `requires`): the technician runs the kiosk (live view,
starting and stopping sessions), the reviewer reads the evidence (media, reports, downloads); both see
the status page, the sessions list and a session's page (the parts for the other role hidden)."""

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
    request,
    send_file,
    url_for,
)

from daemon.accounts import Role
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
from daemon.report.overview import SORTS, SessionQuery, overviews, select
from daemon.report.thumbnails import load_thumbnails
from daemon.session import SessionError
from daemon.store.identity import REFERENCE_PHOTO
from daemon.store.records import CandidateInfo, MediaRecord
from webui.auth import requires
from webui.forms import SessionListForm, StartSessionForm
from webui.live import camera_offline

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


def thumbnails_for(session_id: str) -> dict[str, bytes]:
    return load_thumbnails(backend().reader, backend().recordings_dir, session_id)


@bp.get("/")
@requires(Role.TECHNICIAN, Role.REVIEWER)
def status():
    return render_template("status.html", status=backend().status())


@bp.get("/live")
@requires(Role.TECHNICIAN)
def live():
    return render_template("live.html", interval_ms=round(1000 / current_app.extensions["proctord_live"].max_fps),
                           camera=camera_state())


@bp.get("/live.jpg")
@requires(Role.TECHNICIAN)
def live_jpeg():
    state = camera_state()
    picture = current_app.extensions["proctord_live"].jpeg() if state["online"] else None
    if picture is None:
        abort(503, description=state["text"] or "No frame analysed yet.")
    return Response(picture, mimetype="image/jpeg")


@bp.get("/live/state")
@requires(Role.TECHNICIAN)
def live_state():
    return camera_state()


def camera_state() -> dict:
    """Whether there is a live picture, and if not, why: the live view and the start form say this instead of
    showing an old frame."""
    camera = backend().camera()
    offline = camera_offline(camera)
    return {"online": offline is None, "text": offline, "reason": camera.reason if offline else None}


SESSIONS_PER_PAGE = 50


@bp.get("/sessions")
@requires(Role.TECHNICIAN, Role.REVIEWER)
def sessions():
    """Every session with its score, flags and review state, filtered and ordered by the query string
    (daemon/report/overview.py); a bad filter is said beside its field, and the list shown unfiltered."""
    form = SessionListForm(request.args)
    valid = form.validate()
    rows = select(overviews(backend().reader, backend().rules), form.query() if valid else SessionQuery())
    pages = max(1, -(-len(rows) // SESSIONS_PER_PAGE))
    page = min(form.page.data or 1, pages) if valid else 1
    first = (page - 1) * SESSIONS_PER_PAGE
    listed = _listed_args(form) if valid else {}

    def list_url(**changes) -> str:
        """This list with some of its query changed (a sort header, a page link)."""
        return url_for("pages.sessions", **{k: v for k, v in (listed | changes).items() if v not in ("", None)})

    return render_template(
        "sessions.html", form=form, rows=rows[first:first + SESSIONS_PER_PAGE], matching=len(rows), first=first,
        page=page, pages=pages, status=backend().status(), query=form.query() if valid else SessionQuery(),
        list_url=list_url, sorts=SORTS,
    ), 200 if valid else 400


def _listed_args(form: SessionListForm) -> dict[str, str]:
    """The list's query string as given, without empty or default fields."""
    return {
        field.name: request.args[field.name] for field in form
        if request.args.get(field.name, "") not in ("", field.default, str(field.default))
    }


@bp.route("/sessions/new", methods=["GET", "POST"])
@requires(Role.TECHNICIAN)
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
    return render_template("start.html", form=form, error=error, identity_checks=identity_checks, camera=camera_state())


def _reference(photo: bytes) -> IdentityReference:
    read = backend().read_reference_photo
    if read is None:
        raise ReferencePhotoError("identity checks are off on this kiosk (identity.enabled)")
    return read(photo)


@bp.post("/sessions/stop")
@requires(Role.TECHNICIAN)
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
@requires(Role.TECHNICIAN, Role.REVIEWER)
def session(session_id: str):
    report = report_for(session_id)
    running = report["session"]["state"] == "running"
    return render_template(
        "session.html", report=report, timeline_svg=render_timeline_svg(report_view.timeline(report)),
        refresh_s=RUNNING_REFRESH_S if running else None, evidence=evidence_for(session_id),
    )


@bp.get("/sessions/<session_id>/media/<file>")
@requires(Role.REVIEWER)
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


@bp.app_template_filter("media_url")
def media_url(file_name: str, session_id: str) -> str:
    """Where the page serves a recorded file of the session (`media` above)."""
    return url_for("pages.media", session_id=session_id, file=file_name)


@bp.get("/sessions/<session_id>/report.html")
@requires(Role.REVIEWER)
def report_html(session_id: str):
    """The printable report (daemon/report), its stylesheet linked so the page's CSP allows it."""
    html = render_report_html(report_for(session_id), stylesheet_url=url_for("pages.report_stylesheet"),
                              thumbnails=thumbnails_for(session_id))
    return Response(html, mimetype="text/html")


@bp.get("/report.css")
@requires(Role.TECHNICIAN, Role.REVIEWER)
def report_stylesheet():
    return Response(report_css(), mimetype="text/css")


@bp.get("/sessions/<session_id>/report.csv")
@requires(Role.REVIEWER)
def report_csv(session_id: str):
    return _download(events_csv(report_for(session_id)), "text/csv", f"report-{session_id}.csv")


@bp.get("/sessions/<session_id>/report.pdf")
@requires(Role.REVIEWER)
def report_pdf(session_id: str):
    pdf = render_report_pdf(report_for(session_id), thumbnails_for(session_id))
    return _download(pdf, "application/pdf", f"report-{session_id}.pdf")


def _download(body: str | bytes, mimetype: str, filename: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
