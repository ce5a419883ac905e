"""The technician's web page: the Flask application factory.

The page reads through the daemon's typed status snapshot (daemon/parts.py: DaemonStatus), the store's read-only API and the latest-frame
holder, and changes nothing but through `start_session` / `stop_session`; a slow browser never touches
the pipeline. Every page but /healthz needs a user's login and declares the roles that may use it (webui/auth.py); every state-changing
request needs a CSRF token (Flask-WTF); the browser never sees a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from daemon.clock import SYSTEM_CLOCK, Clock
from daemon.compat import UTC
from daemon.config import RulesConfig, WebConfig
from daemon.events.identity import IdentityReference
from daemon.events.model import Event
from daemon.inference.reference_photo import MAX_REFERENCE_PHOTO_BYTES
from daemon.latest_frame import AnalysedFrame
from daemon.parts import DaemonStatus, PartStatus
from daemon.report import view as report_view
from daemon.store.db import StoreReader
from daemon.store.records import ReviewEntry, SessionRecord
from webui import api, auth, pages, review
from webui.live import LiveView
from webui.metrics import DaemonCollector, metrics_registry

log = logging.getLogger(__name__)

MAX_FORM_BYTES = 64 * 1024  # a form's text fields, together (the start form may add a reference photo)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
CSRF_MESSAGE = "The form was out of date or did not come from this page (CSRF check). Reload the page and try again."


@dataclass(frozen=True)
class WebBackend:
    """All the web page may use of the daemon."""

    status: Callable[[], DaemonStatus]  # the daemon's status snapshot
    reader: StoreReader
    rules: RulesConfig
    start_session: Callable[..., SessionRecord]  # (info) or (info, reference); raises SessionError when one runs
    stop_session: Callable[[], SessionRecord]  # raises SessionError when none runs
    open_events: Callable[[], Sequence[Event]]  # the running session's events that have not ended
    # Commits review entries in one transaction; raises ReviewRefused (daemon/review.py) with the reason.
    record_review: Callable[[list[ReviewEntry]], list[ReviewEntry]]
    latest_frame: Callable[[], AnalysedFrame | None]
    camera: Callable[[], PartStatus]  # the capture part's status: whether the camera delivers frames now
    data_dir: Path
    recordings_dir: Path  # segments, clips and snapshots, as the store names them (<session>/<file>)
    # identity checks on: a reference photo's bytes -> the session's reference (ReferencePhotoError if refused)
    read_reference_photo: Callable[[bytes], IdentityReference] | None = None


def _room_for_a_reference_photo() -> None:
    """The start form sent with a file may hold a reference photo besides its text fields."""
    if request.endpoint == "pages.start_session" and request.mimetype == "multipart/form-data":
        request.max_content_length = MAX_FORM_BYTES + MAX_REFERENCE_PHOTO_BYTES


def create_app(backend: WebBackend, web: WebConfig, clock: Clock = SYSTEM_CLOCK) -> Flask:
    """Raises UserError naming the config key when the password setting cannot be used."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=auth.load_secret_key(backend.data_dir),
        SESSION_COOKIE_NAME="proctord_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=web.session_lifetime_s,
        SESSION_REFRESH_EACH_REQUEST=False,  # the lifetime counts from the login, not the last click
        WTF_CSRF_TIME_LIMIT=web.session_lifetime_s,  # a form open as long as the login stays usable
        MAX_CONTENT_LENGTH=MAX_FORM_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_FORM_BYTES,  # each text field of a multipart form (the start form)
    )
    if web.proxy_hops:
        hops = web.proxy_hops
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    app.extensions["proctord_backend"] = backend
    app.extensions["proctord_clock"] = clock
    app.extensions["proctord_live"] = LiveView(backend.latest_frame, backend.open_events, web.live_fps, clock)
    app.extensions["proctord_metrics"] = metrics_registry(
        DaemonCollector(backend.status, backend.reader.event_counts)
    )
    app.before_request(_room_for_a_reference_photo)  # before CSRFProtect's check reads the body
    CSRFProtect(app)
    auth.install(app, auth.Authenticator(backend.reader, auth.load_password_hash(web), web.session_lifetime_s, clock,
                                         backend.data_dir / auth.LOGINS_FILE))
    app.register_blueprint(pages.bp)
    app.register_blueprint(review.bp)
    app.register_blueprint(api.bp)
    _install_responses(app)
    return app


def _install_responses(app: Flask) -> None:
    @app.template_filter("when")
    def when(epoch: float | None) -> str:
        if epoch is None:
            return "—"
        return datetime.fromtimestamp(epoch, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")  # as the reports

    # The report's own wording (daemon/report/view.py), so the page and the printable report agree.
    app.add_template_filter(report_view.label, "label")
    app.add_template_filter(report_view.clock_offset, "clock")
    app.add_template_filter(report_view.review_state, "review_state")

    @app.after_request
    def security_headers(response):
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.endpoint != "static":
            response.headers["Cache-Control"] = "no-store"  # candidate data stays out of caches
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        message = CSRF_MESSAGE if isinstance(error, CSRFError) else error.description
        return _error_response(message, error.code or 500)

    @app.errorhandler(Exception)
    def internal_error(error: Exception):
        # The log gets the traceback; the browser never does.
        log.exception("web request failed")
        return _error_response("Internal error; see the daemon log.", 500)


def _error_response(message: str, code: int):
    if request.path.startswith("/api/") or request.path in {"/metrics", "/healthz"}:
        return jsonify(error=message), code
    return render_template("error.html", message=message), code
