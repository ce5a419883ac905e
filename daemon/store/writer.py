"""Every store write on one thread, so disk latency never lands on the per-frame path."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from daemon.store.db import Store

P = ParamSpec("P")
T = TypeVar("T")


class StoreWriter:
    def __init__(self, store: Store):
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")

    def submit(self, write: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue `write` (a Store method, or a function calling several) behind earlier writes."""
        return self._executor.submit(write, *args, **kwargs)

    def close(self) -> None:
        """Finish every queued write, then close the database."""
        self._executor.shutdown(wait=True)
        self.store.close()
