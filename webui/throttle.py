"""Slows password guessing down, per client address, in bounded memory.

A few failures are free (typos); after that each further attempt must wait twice as long as the one
before, up to MAX_DELAY_S, counted from the last failure. A locked-out client is refused without its
password even being checked, so guessing is bounded by the delay, and no web thread ever sleeps.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from daemon.clock import Clock

FREE_FAILURES = 3
FIRST_DELAY_S = 2.0
MAX_DELAY_S = 300.0
# Addresses remembered at once (the least recently failing are forgotten first): bounded memory under a
# flood of addresses, at the cost of forgetting some of them.
MAX_CLIENTS = 4096


@dataclass(frozen=True, slots=True)
class _Failures:
    count: int
    last_mono: float


class LoginThrottle:
    def __init__(self, clock: Clock, max_clients: int = MAX_CLIENTS):
        self._clock = clock
        self._max_clients = max_clients
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, client: str) -> float:
        """Seconds before `client` may try a password again (0: now)."""
        with self._lock:
            failures = self._failures.get(client)
        if failures is None or failures.count < FREE_FAILURES:
            return 0.0
        delay = min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (failures.count - FREE_FAILURES))
        return max(0.0, failures.last_mono + delay - self._clock.monotonic())

    def failed(self, client: str) -> None:
        with self._lock:
            previous = self._failures.pop(client, None)
            self._failures[client] = _Failures((previous.count if previous else 0) + 1, self._clock.monotonic())
            while len(self._failures) > self._max_clients:
                self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)
