"""The events' snapshots as thumbnails in the HTML and PDF reports, read through the store's media rows."""

from __future__ import annotations

import re

import cv2
import numpy as np
from test_store_chain import T0, add_file

from daemon.config import RulesConfig
from daemon.events.model import Event, EventChange
from daemon.report import load_report, render_report_html, render_report_pdf
from daemon.report.thumbnails import THUMBNAIL_WIDTH, load_thumbnails
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo


def session_with_snapshots(tmp_path) -> tuple[StoreReader, str]:
    """Two events with a snapshot each; the second snapshot deleted (retention)."""
    store = Store(tmp_path / "proctord.db", "kiosk-7")
    picture = np.zeros((480, 640, 3), np.uint8)
    cv2.rectangle(picture, (200, 100), (440, 380), (80, 200, 80), 4)
    jpeg = cv2.imencode(".jpg", picture)[1].tobytes()
    try:
        session = store.start_session(CandidateInfo("Ada", "c-1", "exam-9"), at=T0)
        for event_id, start in (("ev-1", 5), ("ev-2", 12)):
            store.record_event(EventChange("end", Event(event_id, session.id, "multiple_faces", "high", T0 + start,
                                                        T0 + start + 2, 0.9, {"faces": 2})), [])
            store.add_media(add_file(tmp_path / "recordings", session.id, f"snapshot-{event_id}.jpg", jpeg,
                                     "snapshot", event_id))
        store.finish_session(session.id, at=T0 + 20, frames=300)
        (tmp_path / "recordings" / session.id / "snapshot-ev-2.jpg").unlink()
    finally:
        store.close()
    return StoreReader(tmp_path / "proctord.db"), session.id


def test_reports_carry_each_event_s_snapshot_as_a_thumbnail(tmp_path):
    reader, session_id = session_with_snapshots(tmp_path)
    thumbnails = load_thumbnails(reader, tmp_path / "recordings", session_id)

    assert set(thumbnails) == {"ev-1"}  # the deleted one is left out
    small = cv2.imdecode(np.frombuffer(thumbnails["ev-1"], np.uint8), cv2.IMREAD_COLOR)
    assert small.shape == (240, THUMBNAIL_WIDTH, 3)

    report = load_report(reader, session_id, RulesConfig())
    html = render_report_html(report, thumbnails=thumbnails)
    assert len(re.findall(r'<img class="thumb" src="data:image/jpeg;base64,[A-Za-z0-9+/=]+"', html)) == 1
    assert 'alt="Snapshot: Several faces, when it was confirmed"' in html
    pdf = render_report_pdf(report, thumbnails)
    assert pdf.count(b"/Subtype /Image") == 1
    assert b"/Subtype /Image" not in render_report_pdf(report)
