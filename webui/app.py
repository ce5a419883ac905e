"""The technician's web page: status, sessions and reports, as HTML and JSON.

It reads only through the daemon's status snapshot and the store's read-only API, so a slow browser
never touches the pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime

from flask import Flask, abort, jsonify, render_template
from werkzeug.exceptions import HTTPException

from daemon.config import RulesConfig
from daemon.report import build_report
from daemon.store.db import StoreReader

log = logging.getLogger(__name__)


def create_app(status: Callable[[], object], reader: StoreReader, rules: RulesConfig) -> Flask:
    app = Flask(__name__)

    @app.template_filter("when")
    def when(epoch: float | None) -> str:
        if epoch is None:
            return "—"
        return datetime.fromtimestamp(epoch, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")

    def report_for(session_id: str) -> dict:
        session = reader.session(session_id)
        if session is None:
            abort(404, description=f"no session {session_id!r}")
        return build_report(session, reader.events(session_id), rules)

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    @app.get("/")
    def status_page():
        return render_template("status.html", status=status().as_dict())

    @app.get("/api/status")
    def status_json():
        return jsonify(status().as_dict())

    @app.get("/sessions")
    def sessions_page():
        return render_template("sessions.html", sessions=reader.sessions())

    @app.get("/api/sessions")
    def sessions_json():
        return jsonify([asdict(session) for session in reader.sessions()])

    @app.get("/sessions/<session_id>")
    def session_page(session_id: str):
        return render_template("session.html", report=report_for(session_id))

    @app.get("/api/sessions/<session_id>/report.json")
    def report_json(session_id: str):
        response = jsonify(report_for(session_id))
        response.headers["Content-Disposition"] = f'attachment; filename="report-{session_id}.json"'
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return render_template("error.html", message=error.description), error.code

    @app.errorhandler(Exception)
    def internal_error(error: Exception):
        # The log gets the traceback; the browser never does.
        log.exception("web request failed")
        return render_template("error.html", message="Internal error; see the daemon log."), 500

    return app
