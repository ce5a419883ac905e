"""The uploader against a real S3 server on loopback (rclone serve s3, with access keys): what goes up,
what it is checked against, and what happens on an outage, a kill -9 mid-multipart, wrong credentials,
a missing bucket and a full local disk."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import subprocess

import pytest
from conftest import kill_process, wait_until
from s3_helpers import BUCKET, SECRET_KEY, RcloneS3, kiosk_config, record_session, start_upload_child
from typing_extensions import Self  # typing.Self from 3.11 on; proctord supports 3.10

from daemon.recording.disk import DiskSpace
from daemon.recording.retention import Retention
from daemon.store.db import Store, StoreReader
from daemon.store.writer import StoreWriter
from daemon.sync.contract import KioskStatus, Topics
from daemon.sync.uploader import Uploader
from daemon.sync.watch import uploads_cell

MIB = 1024 * 1024


@pytest.fixture
def s3(tmp_path):
    server = RcloneS3(tmp_path / "s3").start()
    yield server
    server.stop()


class Running:
    """An uploader in this process with its own store writer."""

    def __init__(self, config):
        self.config = config
        self.writer = StoreWriter(Store(config.database_path, kiosk=config.kiosk.name))
        self.uploader = Uploader.from_config(config, self.writer)

    def __enter__(self) -> Self:
        self.uploader.start()
        return self

    def __exit__(self, *exc) -> None:
        self.uploader.stop()
        self.writer.close()

    def figure(self, key: str):
        return self.uploader.status().figure(key)

    def drained(self) -> bool:
        return self.figure("backlog") == 0 and self._manifests() >= 1

    def _manifests(self) -> int:
        return _rows(self.config, "SELECT count(*) FROM uploads WHERE kind = 'manifest' AND state = 'synced'")[0][0]


def _rows(config, sql: str, params: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(config.database_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def _stored_sha256(s3: RcloneS3, key: str) -> str:
    return hashlib.sha256(s3.object_path(key).read_bytes()).hexdigest()


def test_evidence_and_reports_go_up_checked_announced_and_released_to_retention(tmp_path, s3):
    _path, config = kiosk_config(tmp_path, s3)
    media = record_session(config, [("snapshot", 40_000), ("clip", 12 * MIB), ("segment", 2 * MIB)])
    with Running(config) as running:
        wait_until(running.drained, 60, "the session's evidence and reports in the store")
        status = running.uploader.status()
    assert status.state == "ok" and status.figure("bytes_pending") == 0 and status.figure("last_upload") is not None

    session = media[0].session_id
    for record in media[:2]:  # snapshot and clip (multipart: 3 parts of 5 MiB)
        key = f"proctord/hall-a/k7/{record.name}"
        assert _stored_sha256(s3, key) == record.sha256
    # Plain recordings are not in the default files: never queued, never sent.
    assert not s3.object_path(f"proctord/hall-a/k7/{media[2].name}").exists()
    synced = dict(_rows(config, "SELECT name, synced_at IS NOT NULL FROM media"))
    assert synced == {media[0].name: 1, media[1].name: 1, media[2].name: 0}

    manifest = json.loads(s3.object_path(f"proctord/hall-a/k7/{session}/manifest.json").read_text())
    store = Store(config.database_path, kiosk="k7")
    assert manifest["evidence_chain"] == store.chain_head(session)
    store.close()
    assert {m["name"]: m["sha256"] for m in manifest["media"]} == {m.name: m.sha256 for m in media}
    for report in manifest["reports"]:
        assert _stored_sha256(s3, report["key"]) == report["sha256"]
    assert {r["name"].rsplit("/", 1)[1] for r in manifest["reports"]} == {"report.json", "report.html", "report.pdf"}

    announced = [json.loads(payload) for topic, payload in
                 _rows(config, "SELECT topic, payload FROM outbox WHERE topic LIKE '%/evidence'")]
    assert all(topic == "proctor/hall-a/k7/evidence" for topic, _ in
               _rows(config, "SELECT topic, payload FROM outbox WHERE topic LIKE '%/evidence'"))
    clip = next(message for message in announced if message["file_kind"] == "clip")
    assert clip | {"id": None} == clip | {
        "id": None, "session_id": session, "event_id": media[1].event_id, "key": f"proctord/hall-a/k7/{media[1].name}",
        "size": 12 * MIB, "sha256": media[1].sha256, "bucket": BUCKET,
    }
    assert len(announced) == 2 + 4  # snapshot, clip, three reports, manifest

    # Synced evidence is now retention's to free: with the disk low, it goes; nothing else does.
    deleted = Retention(config.retention, StoreReader(config.database_path), lambda name, reason: None,
                        DiskSpace(config.recordings_dir, 10**18)).run_once()
    assert {d.name for d in deleted} == {media[0].name, media[1].name, media[2].name}


def test_a_segment_queued_for_upload_is_kept_until_the_store_has_it(tmp_path, s3):
    _path, config = kiosk_config(tmp_path, s3, files=["segment"])
    s3.stop()
    media = record_session(config, [("segment", 100_000)])
    with Running(config) as running:
        wait_until(lambda: running.uploader.status().state == "degraded", 30, "the uploader to see the outage")
        retention = Retention(config.retention, StoreReader(config.database_path), lambda name, reason: None,
                              DiskSpace(config.recordings_dir, 10**18))
        assert retention.run_once() == []  # unsent: not deletable, although plain recordings usually are
        s3.start()
        wait_until(lambda: running.figure("backlog") == 0, 60, "the segment in the store")
        assert [d.name for d in retention.run_once()] == [media[0].name]


def test_an_outage_loses_nothing_and_the_queue_drains_when_the_store_is_back(tmp_path, s3, caplog):
    _path, config = kiosk_config(tmp_path, s3)
    s3.stop()
    media = record_session(config, [("snapshot", 30_000), ("clip", 7 * MIB)], finish=False)
    with Running(config) as running:
        wait_until(lambda: running.uploader.status().state == "degraded", 30, "the uploader to see the outage")
        status = running.uploader.status()
        assert "cannot reach the store" in status.reason
        assert status.figure("backlog") == 2 and status.figure("bytes_pending") == 30_000 + 7 * MIB
        # The supervisors see the same in the kiosk's retained status.
        payload = json.loads(Topics("proctor", "hall-a", "k7").status_payload(
            KioskStatus("v", None, True, 15.0, upload=running.uploader.summary()), 1.0, 0))
        assert (payload["upload"]["state"], payload["upload"]["backlog"]) == ("degraded", 2)
        assert uploads_cell(payload["upload"]) == "2 files DEGRADED"
        more = record_session(config, [("clip", 1 * MIB)], seed=1)  # recorded during the outage
        s3.start()
        wait_until(running.drained, 60, "everything in the store once it is back")
    for record in media + more:
        assert _stored_sha256(s3, f"proctord/hall-a/k7/{record.name}") == record.sha256
        assert (config.recordings_dir / record.name).is_file()  # the uploader never deletes


def test_kill_9_in_the_middle_of_a_multipart_upload_resumes_without_resending_confirmed_parts(tmp_path, s3):
    # 3 parts of 5 MiB at 4 MB/s: the kill lands while part 2 is on the wire.
    path, config = kiosk_config(tmp_path, s3, max_kbytes_per_s=4000, files=["clip"])
    [clip] = record_session(config, [("clip", 15 * MIB)])
    log = tmp_path / "uploader.log"
    child = start_upload_child(path, log)
    try:
        wait_until(lambda: _rows(config, "SELECT count(*) FROM upload_parts")[0][0] == 1, 60, "the first part confirmed")
        kill_process(child)
    finally:
        kill_process(child)
    key = f"proctord/hall-a/k7/{clip.name}"
    assert not s3.object_path(key).exists()
    assert _rows(config, "SELECT upload_id IS NOT NULL, state FROM uploads") == [(1, "queued")]

    path, config = kiosk_config(tmp_path, s3, files=["clip"])  # no cap for the rest
    child = start_upload_child(path, log)
    try:
        wait_until(lambda: _rows(config, "SELECT state FROM uploads") == [("synced",)], 60, "the clip synced")
    finally:
        child.terminate()
        child.wait(timeout=10)
    assert _stored_sha256(s3, key) == clip.sha256
    sent = re.findall(r"sending part (\d+)/3", log.read_text())
    assert sent.count("1") == 1, sent  # confirmed before the kill: not sent again
    assert sorted(set(sent)) == ["1", "2", "3"] and len(sent) <= 4  # at most the part in flight twice


def test_wrong_credentials_are_reported_without_the_secret_and_nothing_is_lost(tmp_path, s3, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-right-secret-key"
    _path, config = kiosk_config(tmp_path, s3, secret=wrong)
    [snapshot] = record_session(config, [("snapshot", 20_000)])
    with Running(config) as running:
        wait_until(lambda: running.uploader.status().state == "degraded", 30, "the refusal")
        status = running.uploader.status()
    assert "refused the credentials" in status.reason
    assert status.figure("last_error") is None  # the same words: said once, as the problem
    assert status.figure("backlog") >= 1
    assert wrong not in caplog.text and SECRET_KEY not in caplog.text
    assert wrong not in repr(running.uploader._store.settings)
    assert (config.recordings_dir / snapshot.name).is_file()
    assert _rows(config, "SELECT synced_at FROM media") == [(None,)]


def test_a_missing_bucket_is_reported_and_uploads_start_once_it_exists(tmp_path, s3):
    _path, config = kiosk_config(tmp_path, s3, bucket="later")
    [snapshot] = record_session(config, [("snapshot", 20_000)])
    with Running(config) as running:
        wait_until(lambda: running.uploader.status().state == "degraded", 30, "the missing bucket")
        assert "no bucket 'later'" in running.uploader.status().reason
        s3.admin().make_bucket("later")  # as the fleet's admin would
        wait_until(running.drained, 60, "the upload once the bucket exists")
    assert hashlib.sha256(s3.object_path(f"proctord/hall-a/k7/{snapshot.name}", "later").read_bytes()).hexdigest() \
        == snapshot.sha256


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs (needs root): {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_local_disk_stops_nothing_but_the_reports_which_follow_once_there_is_space(tmp_path, s3, small_disk):
    # The recordings and reports on a media partition that fills up (the database on its own, as it
    # must be for the daemon to run at all).
    _path, config = kiosk_config(tmp_path, s3)
    config.data_dir.mkdir(parents=True)
    for folder in ("recordings", "reports"):
        (small_disk / folder).mkdir()
        (config.data_dir / folder).symlink_to(small_disk / folder)
    media = record_session(config, [("snapshot", 30_000), ("clip", 500_000)])
    filler = small_disk / "filler"
    with filler.open("wb") as file:  # the disk full to the last byte
        try:
            while True:
                file.write(b"\0" * 65536)
                file.flush()
        except OSError:
            pass
    with Running(config) as running:
        wait_until(lambda: "No space left" in (running.figure("last_error") or ""), 30, "the full disk reported")
        wait_until(lambda: running.figure("backlog") == 0, 30, "the evidence in the store all the same")
        assert not s3.object_path(f"proctord/hall-a/k7/{media[0].session_id}/manifest.json").exists()
        filler.unlink()
        running.uploader.wake()
        wait_until(running.drained, 60, "the reports in the store once there is space")
    for record in media:
        assert _stored_sha256(s3, f"proctord/hall-a/k7/{record.name}") == record.sha256
    assert s3.object_path(f"proctord/hall-a/k7/{media[0].session_id}/report.pdf").stat().st_size > 0


def test_switching_uploads_off_stops_queueing_and_releases_what_was_queued_to_retention(tmp_path, s3):
    _, config = kiosk_config(tmp_path, s3, files=["segment"])
    s3.stop()
    [segment] = record_session(config, [("segment", 10_000)])
    with Running(config) as running:
        wait_until(lambda: running.uploader.status().state == "degraded", 30, "the outage seen")
    _, config = kiosk_config(tmp_path, s3, enabled=False)
    with Running(config) as running:
        assert running.uploader.status().state == "off"
        record_session(config, [("clip", 10_000)], seed=1)
    assert _rows(config, "SELECT name FROM uploads") == [(segment.name,)]  # nothing new queued
    retention = Retention(config.retention, StoreReader(config.database_path), lambda name, reason: None,
                          DiskSpace(config.recordings_dir, 10**18))
    assert [d.name for d in retention.run_once()] == [segment.name]  # no longer held back; the clip is unsynced
