"""The same data as JSON, the probe (/healthz) and the Prometheus metrics (/metrics)."""

from __future__ import annotations

from dataclasses import asdict

from flask import Blueprint, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from webui.pages import backend, report_for

bp = Blueprint("api", __name__)


@bp.get("/healthz")
def healthz():
    return {"ok": True}


@bp.get("/api/status")
def status():
    return jsonify(backend().status().as_dict())


@bp.get("/api/sessions")
def sessions():
    return jsonify([asdict(session) | {"assessment": asdict(session.assessment)} for session in backend().reader.sessions()])


@bp.get("/api/sessions/<session_id>/report.json")
def report(session_id: str):
    response = jsonify(report_for(session_id))
    response.headers["Content-Disposition"] = f'attachment; filename="report-{session_id}.json"'
    return response


@bp.get("/metrics")
def metrics():
    return Response(generate_latest(current_app.extensions["proctord_metrics"]), content_type=CONTENT_TYPE_LATEST)
