"""Honest sessions: duration and camera-lost time on the clock even without a frame, and a session with too
little analysed time "not assessable" (no score) in its record, its reports and its MQTT stop summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic import FPS, at, face, scene

from daemon.config import Config
from daemon.report import load_report, render_report_html, render_report_pdf
from daemon.report.events_csv import events_csv
from daemon.session import SessionController
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo
from daemon.store.writer import StoreWriter
from daemon.sync.contract import Topics

CANDIDATE = CandidateInfo("Ada Lovelace", "c-42", "math-101")
LOOP_STEP = 4  # the daemon's capture loop reports the camera every 0.5 s (4 frame periods at 8 fps)


def controller(db_path: Path, **options) -> tuple[SessionController, StoreWriter, StoreReader]:
    config = Config()
    writer = StoreWriter(Store(db_path, kiosk="kiosk-7"))
    return SessionController(config.rules, writer, Topics.from_config(config), **options), writer, StoreReader(db_path)


def camera_missing(sessions: SessionController, first: int, last: int) -> None:
    """What the daemon's loop does while no frame arrives: report the camera offline, on the clock."""
    for i in range(first, last + 1, LOOP_STEP):
        sessions.observe_camera(False, at(i))


def test_a_session_without_a_single_frame_lasts_its_clock_time_and_is_not_assessable(tmp_path):
    sessions, writer, reader = controller(tmp_path / "proctord.db")
    session = sessions.start(CANDIDATE, at(0))
    sessions.observe_camera(False, at(-FPS))  # lost before the session began: counts from its start
    camera_missing(sessions, 0, 21 * FPS)
    stopped = sessions.stop()  # as the web page or MQTT stops it: no time given
    writer.close()

    assert stopped.duration == pytest.approx(21.0)
    assessment = stopped.assessment
    assert not assessment.assessable and assessment.analysed_share == 0.0
    assert assessment.camera_offline_seconds == pytest.approx(21.0)
    assert "no frame at all" in assessment.reason and "80 %" in assessment.reason

    report = load_report(reader, session.id, Config().rules)
    assert report["session"]["duration_seconds"] == pytest.approx(21.0) and report["session"]["frames"] == 0
    [lost] = report["events"]
    assert lost["type"] == "camera_lost" and lost["duration_seconds"] == pytest.approx(21.0)
    assert lost["start"] == session.started_at
    assert report["integrity"]["score"] is None and report["assessment"]["assessable"] is False
    assert "Not assessable" in render_report_html(report)
    assert render_report_pdf(report).startswith(b"%PDF")
    assert "no frame from the camera for 21.0 s" in events_csv(report)

    stop = json.loads(reader.outbox()[-1].payload)
    assert stop["kind"] == "stop"
    assert (stop["summary"]["integrity_score"], stop["summary"]["assessable"], stop["summary"]["analysed_share"]) == (
        None, False, 0.0)


def test_a_short_camera_loss_keeps_the_session_assessable_and_a_long_one_does_not(tmp_path):
    def run(lost_s: int, db: Path) -> dict:
        sessions, writer, reader = controller(db)
        session = sessions.start(CANDIDATE, at(0))
        for i in range(10 * FPS):
            sessions.observe(scene(i, faces=(face(),)))
            if i % LOOP_STEP == 0:
                sessions.observe_camera(True, at(i))
        # The grabber says "lost" with the time of the last frame before the gap.
        sessions.observe_camera(False, at(10 * FPS - 1))
        camera_missing(sessions, 10 * FPS, (10 + lost_s) * FPS)
        sessions.stop()
        writer.close()
        return load_report(reader, session.id, Config().rules)

    short = run(1, tmp_path / "short.db")  # 1 s of 11 s lost: 91 % analysed
    assert short["assessment"]["assessable"] and short["integrity"]["score"] is not None
    assert short["assessment"]["analysed_share"] == pytest.approx(10 / 11, abs=0.02)

    long = run(5, tmp_path / "long.db")  # 5 s of 15 s lost: 67 % analysed, under the 80 % default
    assert not long["assessment"]["assessable"] and long["integrity"]["score"] is None
    assert long["assessment"]["camera_offline_seconds"] == pytest.approx(5.1, abs=0.05)


def test_the_share_needed_is_configured_and_kept_with_the_session(tmp_path):
    sessions, writer, reader = controller(tmp_path / "proctord.db", min_analysed_share=0.0)
    session = sessions.start(CANDIDATE, at(0))
    camera_missing(sessions, 0, 5 * FPS)
    sessions.stop()
    writer.close()
    assert reader.session(session.id).min_analysed_share == 0.0
    assert load_report(reader, session.id, Config().rules)["integrity"]["score"] is not None


def test_a_running_session_without_frames_keeps_its_progress(tmp_path):
    sessions, writer, reader = controller(tmp_path / "proctord.db")
    session = sessions.start(CANDIDATE, at(0))
    camera_missing(sessions, 0, 10 * FPS)
    writer.submit(lambda store: None).result()  # the progress writes queued before this have committed
    running = reader.session(session.id)
    assert running.state == "running"
    assert running.duration == pytest.approx(10.0, abs=2.0)  # progress is committed every 2 s
    assert running.camera_offline_s == pytest.approx(running.duration)
    sessions.stop()
    writer.close()


def test_rules_the_kiosk_cannot_check_are_named_in_the_record_and_reports(tmp_path):
    sessions, writer, reader = controller(tmp_path / "proctord.db", not_checked=("phone", "book", "extra_person"))
    session = sessions.start(CANDIDATE, at(0))
    for i in range(5 * FPS):
        sessions.observe(scene(i, faces=(face(),)))
    sessions.stop()
    writer.close()
    report = load_report(reader, session.id, Config().rules)
    assert report["session"]["not_checked"] == ["phone", "book", "extra_person"]
    assert "Not checked on this kiosk (no object detection model): Phone, Book, Extra person." in render_report_html(report)
    assert json.loads(reader.outbox()[-1].payload)["summary"]["not_checked"] == ["phone", "book", "extra_person"]


def test_a_session_started_with_the_camera_already_lost_is_without_frames_from_its_first_moment(tmp_path):
    sessions, writer, reader = controller(tmp_path / "proctord.db")
    session = sessions.start(CANDIDATE, at(0), camera_online=False)
    camera_missing(sessions, LOOP_STEP, 10 * FPS)  # the capture loop's first report comes half a second later
    stopped = sessions.stop()
    writer.close()
    assert stopped.camera_offline_s == pytest.approx(stopped.duration) == pytest.approx(10.0)
    [lost] = reader.events(session.id)
    assert (lost.type, lost.start) == ("camera_lost", session.started_at)
