"""SIGKILL in the middle of a recording session, then a restart: a real daemon process on the scenario video.

Nothing committed before the kill is lost, the session is closed as interrupted, every finished segment
(and the files the kill cut short, once recovered) decodes to the end, and the chain verifies."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import av
from conftest import daemon_config, kill_process, run_proctord, start_proctord, wait_until

from daemon.store.db import Store, StoreReader


def write_config(tmp_path: Path, video: Path, models_dir: Path, auto_start: bool) -> Path:
    config = tmp_path / f"proctord-{auto_start}.toml"
    config.write_text(daemon_config(
        tmp_path, models_dir, video, camera={"realtime": True}, session={"auto_start": auto_start},
        recording={"segment_s": 2.0, "keyframe_interval_s": 0.5}, retention={"min_free_mb": 0},
    ))
    return config


def rows(db: Path, sql: str) -> list[tuple]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return []
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


def decoded(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_sigkill_mid_recording_loses_nothing_committed_and_the_evidence_verifies(tmp_path, scenario_video, models_dir):
    db = tmp_path / "data" / "proctord.db"
    recordings = tmp_path / "data" / "recordings"
    log = tmp_path / "daemon.log"
    daemon = start_proctord(write_config(tmp_path, scenario_video, models_dir, auto_start=True), log)
    try:
        # Into the no_face stretch (its event starts at 5 s): finished segments, an event, its clip open.
        wait_until(
            lambda: len(rows(db, "SELECT 1 FROM media WHERE kind = 'segment'")) >= 2
            and rows(db, "SELECT 1 FROM events WHERE type = 'no_face'")
            and list(recordings.rglob("clip-*.mp4.part")),
            60, "two finished segments, a no_face event and its clip being written",
        )
        committed_events = rows(db, 'SELECT id, type, start FROM events')
        committed_media = rows(db, "SELECT name, sha256 FROM media")
        kill_process(daemon)  # SIGKILL: no shutdown, no flush, no close
    finally:
        kill_process(daemon)
    [(session_id, state_at_kill)] = rows(db, "SELECT id, state FROM sessions")
    assert state_at_kill == "running"
    assert list(recordings.rglob("*.part"))  # the kill left files half-written

    restarted = start_proctord(write_config(tmp_path, scenario_video, models_dir, auto_start=False), log)
    try:
        wait_until(lambda: rows(db, "SELECT state FROM sessions") == [("interrupted",)], 60, "the session closed")
        restarted.terminate()
        assert restarted.wait(timeout=30) == 0
    finally:
        kill_process(restarted)

    Store(db, "kiosk-1").close()  # the database opens (and migrates, and closes) as usual
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    reader = StoreReader(db)
    session = reader.session(session_id)
    assert session.state == "interrupted" and session.ended_at == session.last_seen_at
    events = {(e.id, e.type, e.start): e for e in reader.events(session_id)}
    assert set(committed_events) <= set(events)  # every event committed before the kill is there
    assert all(e.end is not None and e.end <= session.ended_at for e in events.values())

    media = reader.media(session_id)
    assert set(committed_media) <= {(m.name, m.sha256) for m in media}
    kinds = {m.kind for m in media}
    assert {"segment", "clip", "snapshot"} <= kinds
    recovered = [m for m in media if (m.name, m.sha256) not in set(committed_media)]
    assert any(m.kind == "clip" for m in recovered)  # the clip the kill interrupted, cut to whole fragments
    for item in media:
        if item.kind != "snapshot":
            assert decoded(recordings / item.name) == item.frames > 0, item.name
    assert not list(recordings.rglob("*.part"))

    config = write_config(tmp_path, scenario_video, models_dir, auto_start=False)
    verified = run_proctord("verify", session_id, "--config", str(config))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"session {session_id}: ok" in verified.stdout
