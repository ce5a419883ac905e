"""Slows password guessing down, per client address, in bounded memory.

A few failures are free (typos); after that each further attempt must wait twice as long as the one
before, up to MAX_DELAY_S, counted from the last attempt. A locked-out client is refused without its
password even being checked, so guessing is bounded by the delay, and no web thread ever sleeps.

Taking a turn is atomic: `claim` counts the attempt as a failure before the (slow) password check and
`succeeded` clears the count, so parallel guesses from one address get one check per window, however
many server threads take them at once.
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

    def claim(self, client: str) -> float:
        """0 when `client` may try a password now (the try counts as failed until `succeeded`),
        otherwise the seconds it must wait."""
        with self._lock:
            wait = self._wait(client)
            if wait == 0:
                previous = self._failures.pop(client, None)
                self._failures[client] = _Failures((previous.count if previous else 0) + 1, self._clock.monotonic())
                while len(self._failures) > self._max_clients:
                    self._failures.popitem(last=False)
            return wait

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _wait(self, client: str) -> float:
        failures = self._failures.get(client)
        if failures is None or failures.count < FREE_FAILURES:
            return 0.0
        delay = min(MAX_DELAY_S, FIRST_DELAY_S * 2 ** (failures.count - FREE_FAILURES))
        return max(0.0, failures.last_mono + delay - self._clock.monotonic())
