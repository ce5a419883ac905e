"""Sessions and their reports through the real store: focus tallies and calibration committed with the
session's progress, a crashed session's report, and the store migration that keeps them."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import sqlite_utils
from synthetic import FPS, at, face, scene, wall

from daemon.config import Config
from daemon.report import load_report
from daemon.session import PROGRESS_EVERY_S, SessionController
from daemon.store.db import MIGRATIONS, Store, StoreReader
from daemon.store.records import CandidateInfo
from daemon.store.writer import StoreWriter
from daemon.sync.contract import Topics

REPO = Path(__file__).resolve().parents[1]
CANDIDATE = CandidateInfo("Ada Lovelace", "c-42", "math-101", "desk 4")


def controller(db_path: Path) -> tuple[SessionController, StoreWriter, StoreReader]:
    config = Config()
    reader = StoreReader(db_path)
    writer = StoreWriter(Store(db_path, kiosk="kiosk-7"))
    return SessionController(config.rules, writer, Topics.from_config(config)), writer, reader


def exam(first: int, count: int, **face_kw):
    return [scene(i, faces=(face(**face_kw),)) for i in range(first, first + count)]


def test_a_stopped_session_reports_its_events_focus_and_calibration(tmp_path):
    sessions, writer, reader = controller(tmp_path / "proctord.db")
    session = sessions.start(CANDIDATE, at(0))
    frames = exam(0, 4 * FPS, yaw=10.0) + exam(4 * FPS, 4 * FPS, yaw=50.0) + exam(8 * FPS, 2 * FPS, yaw=10.0)
    for analysis in frames:
        sessions.observe(analysis)
    sessions.stop(at(10 * FPS))
    writer.close()

    report = load_report(reader, session.id, Config().rules)

    assert report["session"]["state"] == "completed" and report["session"]["frames"] == 10 * FPS
    [event] = report["events"]
    assert (event["type"], event["start"], event["end"]) == ("looking_away", wall(4 * FPS), wall(8 * FPS))
    assert report["calibration"]["neutral_deg"]["head_yaw"] == 10.0
    assert (report["focus"]["face_present"], report["focus"]["looking_away"], report["focus"]["attentive"]) == (1.0, 0.4, 0.6)
    stop = json.loads(reader.outbox()[-1].payload)
    assert stop["kind"] == "stop" and stop["summary"]["integrity_score"] == report["integrity"]["score"] == 80.0


CRASHING_DAEMON = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, "tests")
    from pathlib import Path
    from synthetic import FPS, at, face, scene
    from test_report_session import CANDIDATE, controller

    sessions, writer, reader = controller(Path(sys.argv[1]))
    session = sessions.start(CANDIDATE, at(0))
    frames = [scene(i, faces=(face(yaw=10.0),)) for i in range(3 * FPS)]
    frames += [scene(i, faces=()) for i in range(3 * FPS, 6 * FPS)]
    for analysis in frames:
        sessions.observe(analysis)
    writer.submit(lambda store: None).result()  # what was committed before the power cut
    print(session.id, flush=True)
    os._exit(0)  # no stop, no close
    """
)


def test_a_crashed_session_is_closed_at_its_last_progress_and_still_gets_its_report(tmp_path):
    db_path = tmp_path / "proctord.db"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_DAEMON, str(db_path)], cwd=REPO, capture_output=True, text=True, check=True
    )
    session_id = crashed.stdout.strip()

    sessions, writer, reader = controller(db_path)  # the next start
    [closed] = writer.submit(
        lambda store: store.close_interrupted(sessions.alert_messages, sessions.stop_message)
    ).result()
    writer.close()
    report = load_report(reader, session_id, Config().rules)

    # Progress is committed every 2 s: the last commit was on frame 4 s (the 33rd frame), 2 s into the
    # no-face stretch, whose event (onset 2 s) had just started.
    assert PROGRESS_EVERY_S == 2.0
    last_progress = wall(4 * FPS)
    assert (report["session"]["state"], report["session"]["ended_at"]) == ("interrupted", last_progress)
    [event] = report["events"]
    assert (event["type"], event["start"], event["end"]) == ("no_face", wall(3 * FPS), last_progress)
    assert report["focus"]["counts"]["frames"] == 4 * FPS + 1
    assert report["focus"]["counts"]["face_present"] == 3 * FPS
    assert report["calibration"]["calibrated"] and report["calibration"]["neutral_deg"]["head_yaw"] == 10.0
    assert report["integrity"]["score"] == 75.0  # 1 s of no face in 4 s
    *_, end, stop = [json.loads(m.payload) for m in reader.outbox()]  # queued with the closes
    assert (end["kind"], end["reason"], end["event"]["end"]) == ("end", "interrupted", last_progress)
    assert (stop["kind"], stop["summary"]["integrity_score"]) == ("stop", 75.0)
    assert stop["session"] == json.loads(json.dumps(asdict(closed)))  # as JSON: not_checked a list


def test_a_version_1_database_is_backed_up_and_migrated_and_its_sessions_still_report(tmp_path):
    db_path = tmp_path / "proctord.db"
    conn = sqlite3.connect(db_path, isolation_level=None)
    db = sqlite_utils.Database(conn)
    db["schema_version"].create({"version": int, "applied_at": float}, pk="version")
    MIGRATIONS[0](db)
    db["schema_version"].insert({"version": 1, "applied_at": 0.0})
    db["sessions"].insert({
        "id": "old", "kiosk": "k", "candidate_name": "", "candidate_id": "", "exam_id": "", "notes": "",
        "state": "completed", "started_at": 100.0, "ended_at": 160.0, "last_seen_at": 160.0, "frames": 900,
    })
    conn.close()

    Store(db_path, kiosk="k").close()

    assert (tmp_path / "proctord.db.v1.bak").is_file()
    report = load_report(StoreReader(db_path), "old", Config().rules)
    assert report["focus"]["frames"] == 0 and report["calibration"]["calibrated"] is False
    assert report["integrity"]["score"] == 100.0
