"""Retention and a full disk: what is deleted (and recorded), what is kept whatever the pressure, and that
a disk that fills up degrades recording but never stops proctoring.

The quota is either a real size-limited file system (a tmpfs, when this process may mount one) or a
configured floor with the free space computed from the files present (quota minus their sizes)."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from pathlib import Path

import av
import pytest
from conftest import SCENARIO_FPS, daemon_config, wait_until

from daemon.capture.frame import Frame
from daemon.config import Config, RecordingConfig, RetentionConfig, parse_config
from daemon.events.model import Event, EventChange
from daemon.files import file_sha256
from daemon.recording.disk import DiskSpace
from daemon.recording.recorder import Recorder
from daemon.recording.retention import DAY_S, Deletion, Retention
from daemon.store.db import Store, StoreReader
from daemon.store.records import CandidateInfo, MediaRecord
from daemon.store.verify import verify

KIB = 1024
NOW = 1_800_000_000.0


class FixedClock:
    def monotonic(self) -> float:
        return 0.0

    def time(self) -> float:
        return NOW

    def sleep(self, seconds: float) -> None:
        raise AssertionError("retention never sleeps")


# --- which files retention deletes ------------------------------------------------------------------

# (session, file, kind, age in days, synced); sessions: A and B completed (B's evidence synced),
# C completed but under review, D still running.
FILES = [
    ("A", "segment-0001.mp4", "segment", 10, False),
    ("A", "segment-0002.mp4", "segment", 9, False),
    ("A", "clip-a.mp4", "clip", 9, False),
    ("A", "snapshot-a.jpg", "snapshot", 9, False),
    ("C", "segment-0001.mp4", "segment", 8, True),
    ("C", "clip-c.mp4", "clip", 8, True),
    ("B", "segment-0001.mp4", "segment", 5, True),
    ("B", "clip-b.mp4", "clip", 5, True),
    ("D", "segment-0001.mp4", "segment", 0, False),
]
FILE_KIB = 100


def build_sessions(db_path: Path, root: Path) -> dict[str, str]:
    """The sessions and files of FILES, real ones on disk, recorded in a real store. Returns label -> id."""
    store = Store(db_path, "kiosk-7")
    ids = {}
    try:
        for label in "ABCD":
            session = store.start_session(CandidateInfo(candidate_id=label), at=NOW - 20 * DAY_S)
            store.record_event(EventChange("end", Event(f"ev-{label}", session.id, "no_face", "high",
                                                        session.started_at + 5, session.started_at + 9, 1.0)), [])
            ids[label] = session.id
        for label, file, kind, age, _ in FILES:
            name = f"{ids[label]}/{file}"
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(bytes([len(name) % 256]) * FILE_KIB * KIB)
            event_id = None if kind == "segment" else f"ev-{label}"
            store.add_media(MediaRecord(name, ids[label], kind, event_id, file_sha256(path), FILE_KIB * KIB,
                                        NOW - age * DAY_S, NOW - age * DAY_S + 60, 900))
            store._conn.execute("UPDATE media SET created_at = ? WHERE name = ?", (NOW - age * DAY_S, name))
        for label in "ABC":
            store.finish_session(ids[label], at=NOW - 19 * DAY_S, frames=1000)
        store.mark_synced(ids["B"])
        store.mark_synced(ids["C"])
        store.set_under_review(ids["C"], True)
    finally:
        store.close()
    return ids


def run_retention(db_path: Path, disk: DiskSpace, config: RetentionConfig) -> list[Deletion]:
    store = Store(db_path, "kiosk-7")
    try:
        return Retention(config, StoreReader(db_path), store.record_deletion, disk, FixedClock()).run_once()
    finally:
        store.close()


def used_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


@pytest.mark.parametrize("quota", ["tmpfs", "simulated"])
def test_a_full_quota_deletes_plain_recordings_then_synced_evidence_and_keeps_the_rest(
    tmp_path, tmpfs, caplog, quota
):
    if quota == "tmpfs":
        root = tmpfs(1536)  # 1.5 MiB for 9 files of 100 KiB
        disk = DiskSpace(root, 950 * KIB)
    else:
        root = tmp_path / "recordings"
        disk = DiskSpace(root, 950 * KIB, free_bytes=lambda path: 1536 * KIB - used_bytes(path))
    db_path = tmp_path / "proctord.db"
    ids = build_sessions(db_path, root)
    assert disk.low()  # 1536 - 900 = 636 KiB free, below the 950 KiB floor: 4 files must go
    with caplog.at_level(logging.INFO, logger="daemon.recording.retention"):
        deleted = run_retention(db_path, disk, RetentionConfig(recording_max_age_days=0, evidence_max_age_days=0))

    expected = [f"{ids['A']}/segment-0001.mp4", f"{ids['A']}/segment-0002.mp4", f"{ids['B']}/segment-0001.mp4",
                f"{ids['B']}/clip-b.mp4"]
    assert [d.name for d in deleted] == expected  # plain recordings first, oldest first; then synced evidence
    assert not disk.low()
    remaining = {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}
    kept = {f"{ids[label]}/{file}" for label, file, *_ in FILES} - set(expected)
    assert remaining == kept  # A's unsynced clip and snapshot, all of C (under review), D (running)
    deletions = StoreReader(db_path).deletions()
    assert [(row["name"], row["bytes"]) for row in deletions] == [(name, FILE_KIB * KIB) for name in expected]
    assert all(row["reason"].startswith("disk space: ") for row in deletions)
    logged = [record.getMessage() for record in caplog.records]
    assert [line.split(" ")[2] for line in logged if line.startswith("retention deleted")] == expected
    result = verify(db_path, root)
    assert result.ok, result.problems  # each deletion is in its session's chain


def test_by_age_only_plain_recordings_and_old_synced_evidence_go(tmp_path):
    root = tmp_path / "recordings"
    db_path = tmp_path / "proctord.db"
    ids = build_sessions(db_path, root)
    disk = DiskSpace(root, 0, free_bytes=lambda _: 10**12)
    deleted = run_retention(db_path, disk, RetentionConfig(recording_max_age_days=7, evidence_max_age_days=4))

    assert [(d.name, d.reason) for d in deleted] == [
        (f"{ids['A']}/segment-0001.mp4", "older than 7 days (10.0)"),
        (f"{ids['A']}/segment-0002.mp4", "older than 7 days (9.0)"),
        (f"{ids['B']}/clip-b.mp4", "older than 4 days (5.0)"),
    ]  # not A's old clip and snapshot (unsynced), nothing of C (under review) or D (running)


def test_with_nothing_left_to_delete_retention_says_so(tmp_path, caplog):
    root = tmp_path / "recordings"
    db_path = tmp_path / "proctord.db"
    build_sessions(db_path, root)
    disk = DiskSpace(root, 10**9, free_bytes=lambda _: 0)
    with caplog.at_level(logging.WARNING):
        deleted = run_retention(db_path, disk, RetentionConfig(recording_max_age_days=0, evidence_max_age_days=0))

    assert len(deleted) == 4  # everything it may delete, and no more
    assert "the rest is unsynced evidence, under review or in use" in caplog.text


# --- a disk that really fills up ----------------------------------------------------------------------


def test_a_disk_that_fills_up_degrades_recording_keeps_whole_fragments_and_frames_keep_coming(
    tmpfs, scenario_frames
):
    root = tmpfs(400)
    media: list[MediaRecord] = []
    recorder = Recorder(RecordingConfig(segment_s=60.0, queue_frames=600), root, lookback_s=0.0,
                        on_media=media.append, disk=DiskSpace(root, 0))
    recorder.start()
    recorder.start_session("s-full")
    for i, image in enumerate(scenario_frames):
        recorder.offer(Frame(image, i, i / SCENARIO_FPS, 1_700_000_000.0 + i / SCENARIO_FPS))
    wait_until(lambda: recorder.status.frames_recorded == len(scenario_frames), 60, "every frame to be taken")

    status = recorder.status
    assert status.state == "degraded"
    assert "No space left on device" in status.reason
    recorder.stop_session().result(timeout=30)
    recorder.close()
    [segment] = media  # what fitted, cut after its last complete fragment
    with av.open(str(root / segment.name)) as container:
        assert sum(1 for _ in container.decode(video=0)) == segment.frames > 0
    assert not list(root.rglob("*.part"))


def test_a_daemon_below_the_floor_keeps_proctoring_and_reports_recording_degraded(
    tmp_path, scenario_video, scenario_frames, models_dir
):
    from daemon.service import Daemon

    config: Config = parse_config(daemon_config(
        tmp_path, models_dir, scenario_video, camera={"realtime": True}, session={"auto_start": True},
        retention={"min_free_mb": shutil.disk_usage(tmp_path).free // 1_000_000 + 1_000_000},
    ))
    daemon = Daemon(config)
    runner = threading.Thread(target=daemon.run, name="daemon-under-test")
    runner.start()
    try:
        degraded = wait_until(lambda: (s := daemon.status().part("recording")).state == "degraded" and s, 60,
                              "the status to say recording is degraded")
        ended = wait_until(lambda: (s := daemon.status()).state == "source_ended" and s, 120, "the video to end")
    finally:
        daemon.request_stop()
        runner.join(timeout=60)

    assert "MB free, below the" in degraded.reason
    assert ended.part("analysis").figure("frames") > len(scenario_frames) / 2  # analysed all the same (some dropped by capture)
    conn = sqlite3.connect(config.database_path)
    types = {row[0] for row in conn.execute("SELECT type FROM events")}
    assert {"no_face", "multiple_faces"} <= types  # analysed and alerted all the same
    assert conn.execute("SELECT count(*) FROM media").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM outbox").fetchone()[0] >= 4  # the alerts wait for the broker
    conn.close()
