"""When the object detector runs: at `object_rate_hz` of frame time, never on every frame.

Two ways, same schedule. `InlineObjects` runs the detector in the caller's thread on the frames that are
due (replay: results depend on the file's timeline only, not on the machine's speed). `BackgroundObjects`
hands due frames to a worker thread and reports its latest results without waiting (live: a 30 ms object
pass must not hold up the per-frame face path).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass

import numpy as np

from daemon.inference.analysis import DetectedObject, Face
from daemon.inference.object_evidence import ConfirmedObjects

log = logging.getLogger(__name__)
# Niceness of the worker thread: when both want the CPU, the per-frame path wins.
_WORKER_NICENESS = 10


@dataclass(frozen=True, slots=True)
class ObjectSnapshot:
    objects: tuple[DetectedObject, ...] = ()
    mono: float | None = None  # time of the frame they were found on; None until the first run
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


def _run(detector: ConfirmedObjects, image: np.ndarray, mono: float, faces: tuple[Face, ...]) -> ObjectSnapshot:
    started = time.perf_counter()
    objects = tuple(detector.detect(image, faces))
    return ObjectSnapshot(objects, mono, (time.perf_counter() - started) * 1000)


class InlineObjects:
    def __init__(self, detector: ConfirmedObjects, rate_hz: float):
        self._detector = detector
        self._schedule = _Schedule(rate_hz)
        self._latest = ObjectSnapshot()

    def update(self, image: np.ndarray, mono: float, faces: tuple[Face, ...]) -> ObjectSnapshot:
        if self._schedule.due(mono):
            self._latest = _run(self._detector, image, mono, faces)
        return self._latest

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class BackgroundObjects:
    def __init__(self, detector: ConfirmedObjects, rate_hz: float):
        self._detector = detector
        self._schedule = _Schedule(rate_hz)
        self._latest = ObjectSnapshot()
        self._pending: tuple[np.ndarray, float, tuple[Face, ...]] | None = None
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="objects", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def update(self, image: np.ndarray, mono: float, faces: tuple[Face, ...]) -> ObjectSnapshot:
        if self._schedule.due(mono):
            with self._wake:
                self._pending = (image, mono, faces)  # a frame still waiting is replaced by the newer one
                self._wake.notify()
        return self._latest

    def _work(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _WORKER_NICENESS)
        except (AttributeError, OSError) as exc:  # not Linux, or not allowed: run at normal priority
            log.debug("object worker keeps its priority: %s", exc)
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending is not None or self._stopping)
                if self._stopping:
                    return
                job, self._pending = self._pending, None
            try:
                self._latest = _run(self._detector, *job)  # replaced whole: readers never see half a result
            except Exception:  # a bad frame must not end object detection for the rest of the session
                log.exception("object detection failed on the frame at %.3f s", job[1])
