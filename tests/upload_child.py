"""The uploader on its own in a process, for the kill -9 tests and the drill: `upload_child.py CONFIG
[--retention]`. With --retention, retention runs too on a disk that counts as always low, so it deletes
every file it may as soon as it may (what the drill checks: never before the store confirmed it)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.config import load_config
from daemon.recording.disk import DiskSpace
from daemon.recording.retention import Retention
from daemon.store.db import Store, StoreReader
from daemon.store.writer import StoreWriter
from daemon.sync.uploader import Uploader


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("--retention", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.INFO)
    config = load_config(args.config)
    writer = StoreWriter(Store(config.database_path, kiosk=config.kiosk.name))
    uploader = Uploader.from_config(config, writer)
    retention = None
    if args.retention:
        config.recordings_dir.mkdir(parents=True, exist_ok=True)
        retention = Retention(
            config.retention, StoreReader(config.database_path),
            lambda name, reason: writer.submit(lambda store: store.record_deletion(name, reason)).result(),
            DiskSpace(config.recordings_dir, 10**18),
        )
        retention.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    uploader.start()
    stop.wait()
    uploader.stop()
    if retention:
        retention.stop()
    writer.close()


if __name__ == "__main__":
    main()
