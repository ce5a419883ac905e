"""Work that runs at its own rate of frame time, never on every frame: object detection, face embeddings.

Two ways, same schedule. `InlineJob` runs the work in the caller's thread on the frames that are due
(replay: results depend on the file's timeline only, not on the machine's speed). `BackgroundJob` hands due
frames to a worker thread and reports its latest result without waiting (live: a 30 ms object pass or a
10 ms embedding must not hold up the per-frame face path).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from daemon.inference.analysis import Face

log = logging.getLogger(__name__)
# Niceness of the worker thread: when both want the CPU, the per-frame path wins.
_WORKER_NICENESS = 10

T = TypeVar("T")
# The work: a frame and its faces in, a result out.
Work = Callable[[np.ndarray, tuple[Face, ...]], T]


@dataclass(frozen=True, slots=True)
class JobResult(Generic[T]):
    value: T | None = None  # None until the first run
    mono: float | None = None  # time of the frame it was found on; None until the first run
    ms: float = 0.0  # how long that run took


class _Schedule:
    """Due every 1/rate seconds of frame time; a gap or a new timeline starts the count again."""

    def __init__(self, rate_hz: float):
        self._period = 1.0 / rate_hz
        self._next: float | None = None

    def due(self, mono: float) -> bool:
        if self._next is not None and self._next - self._period <= mono < self._next:
            return False  # still inside the current slot
        if self._next is not None and self._next <= mono < self._next + self._period:
            self._next += self._period  # keep the cadence
        else:
            self._next = mono + self._period  # the first frame, a gap, or a timeline that went back
        return True


def _run(work: Work[T], image: np.ndarray, mono: float, faces: tuple[Face, ...]) -> JobResult[T]:
    started = time.perf_counter()
    value = work(image, faces)
    return JobResult(value, mono, (time.perf_counter() - started) * 1000)


class InlineJob(Generic[T]):
    def __init__(self, work: Work[T], rate_hz: float, name: str):
        self._work = work
        self._schedule = _Schedule(rate_hz)
        self._latest: JobResult[T] = JobResult()

    def update(self, image: np.ndarray, mono: float, faces: tuple[Face, ...], wanted: bool = True) -> JobResult[T]:
        """Run the work on this frame if it is `wanted` and due; the latest result either way."""
        if wanted and self._schedule.due(mono):
            self._latest = _run(self._work, image, mono, faces)
        return self._latest

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class BackgroundJob(Generic[T]):
    def __init__(self, work: Work[T], rate_hz: float, name: str):
        self._work = work
        self._name = name
        self._schedule = _Schedule(rate_hz)
        self._latest: JobResult[T] = JobResult()
        self._pending: tuple[np.ndarray, float, tuple[Face, ...]] | None = None
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def update(self, image: np.ndarray, mono: float, faces: tuple[Face, ...], wanted: bool = True) -> JobResult[T]:
        if wanted and self._schedule.due(mono):
            with self._wake:
                self._pending = (image, mono, faces)  # a frame still waiting is replaced by the newer one
                self._wake.notify()
        return self._latest

    def _loop(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _WORKER_NICENESS)
        except (AttributeError, OSError) as exc:  # not Linux, or not allowed: run at normal priority
            log.debug("%s worker keeps its priority: %s", self._name, exc)
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending is not None or self._stopping)
                if self._stopping:
                    return
                job, self._pending = self._pending, None
            try:
                self._latest = _run(self._work, *job)  # replaced whole: readers never see half a result
            except Exception:  # a bad frame must not end the work for the rest of the session
                log.exception("%s failed on the frame at %.3f s", self._name, job[1])
