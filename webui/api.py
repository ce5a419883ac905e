"""The same data as JSON, the probe (/healthz) and the Prometheus metrics (/metrics)."""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from daemon.accounts import Role
from daemon.report import view as report_view
from daemon.review import ReviewState
from webui.auth import public, requires
from webui.pages import backend, report_for

bp = Blueprint("api", __name__)


@bp.get("/healthz")
@public
def healthz():
    return {"ok": True}


@bp.get("/api/status")
@requires(Role.TECHNICIAN, Role.REVIEWER)
def status():
    status = backend().status().as_dict()
    for event in status["open_events"]:
        event["label"] = report_view.label(event["type"])  # as the page and the report name it
    return jsonify(status)


@bp.get("/api/sessions")
@requires(Role.TECHNICIAN, Role.REVIEWER)
def sessions():
    """The newest 100 sessions, each with its assessment and review state (not_reviewed, in_review, reviewed)."""
    reviewed = backend().reader.review_states()
    return jsonify([
        asdict(session) | {"assessment": asdict(session.assessment),
                           "review_state": reviewed.get(session.id, ReviewState.NOT_REVIEWED).value}
        for session in backend().reader.sessions()
    ])


@bp.get("/api/sessions/<session_id>/report.json")
@requires(Role.REVIEWER)
def report(session_id: str):
    response = jsonify(report_for(session_id))
    response.headers["Content-Disposition"] = f'attachment; filename="report-{session_id}.json"'
    return response


@bp.get("/metrics")
@requires(Role.TECHNICIAN)
def metrics():
    return Response(generate_latest(current_app.extensions["proctord_metrics"]), content_type=CONTENT_TYPE_LATEST)
