"""The store's writer thread as one of the daemon's parts: started first, closed last, so every other
part's final writes (the interrupted session, the last recording files) are committed before it closes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from daemon.parts import Figure, PartStatus
from daemon.store.writer import StoreWriter


class StorePart:
    name = "store"

    def __init__(self, writer: StoreWriter, database: Path):
        self._writer = writer
        self._database = database

    def start(self) -> None:
        pass  # the writer's thread runs from its construction: recovery writes before the parts start

    def stop(self) -> None:
        self._writer.close()  # finishes every queued write first

    def status(self) -> PartStatus:
        files = (self._database, self._database.with_name(self._database.name + "-wal"))
        size = sum(path.stat().st_size for path in files if path.exists())
        writes = self._writer.status()  # failing writes (a full disk) make the store degraded
        return replace(writes, name=self.name, title="Store", figures=(
            Figure("database_bytes", "Database", size, "bytes", help="Size of the database and its write-ahead log"),
            *writes.figures,
        ))
