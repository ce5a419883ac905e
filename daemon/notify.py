"""systemd's readiness and watchdog protocol (sd_notify), spoken over its AF_UNIX datagram socket.

systemd passes the socket in $NOTIFY_SOCKET (a path, or "@name" for an abstract socket) and, with
WatchdogSec=, the watchdog period in $WATCHDOG_USEC. Outside systemd there is no socket and every call
is a no-op, so the daemon runs the same from a terminal. Sending never raises: a notify socket that
went away must not take the proctoring down with it.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from daemon.errors import UserError

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, address: str | None, watchdog_period_s: float | None = None):
        self.watchdog_period_s = watchdog_period_s
        self._address = _socket_address(address) if address else None
        self._socket: socket.socket | None = None
        self._failing = False
        if self._address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> SystemdNotifier:
        return cls(environ.get("NOTIFY_SOCKET"), _watchdog_period(environ))

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def ready(self, status: str) -> None:
        self._send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self, status: str) -> None:
        self._send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _send(self, *assignments: str) -> None:
        if self._socket is None:
            return
        # One assignment per line: a newline inside a status would start a bogus assignment.
        message = "\n".join(line.replace("\n", " ") for line in assignments)
        try:
            self._socket.sendto(message.encode(), self._address)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot notify systemd on %s: %s", os.environ.get("NOTIFY_SOCKET"), exc)
            self._failing = True
            return
        if self._failing:
            log.info("notifying systemd again")
        self._failing = False


def _socket_address(address: str) -> str | bytes:
    if address.startswith("@"):
        # An abstract socket: the name starts with a NUL byte instead of "@".
        return b"\0" + address[1:].encode()
    if not address.startswith("/"):
        raise UserError(f"NOTIFY_SOCKET: {address!r} is neither a socket path nor an @abstract name")
    return address


def _watchdog_period(environ: Mapping[str, str]) -> float | None:
    """WatchdogSec= as seconds; None when no watchdog is asked for, or it is meant for another process."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        period = int(usec) / 1_000_000
    except ValueError:
        raise UserError(f"WATCHDOG_USEC: {usec!r} is not a number of microseconds") from None
    return period if period > 0 else None
