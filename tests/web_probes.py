"""Probes of a running web page, as an attacker or a monitor would make them: shared by
tests/test_web_robustness.py and bench/drill_faults.py."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from webui.throttle import FREE_FAILURES


def basic_get(port: int, path: str, password: str, timeout: float = 10) -> int:
    """The HTTP status of GET `path` with the technician's Basic credentials."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        token = base64.b64encode(f"technician:{password}".encode()).decode()
        connection.request("GET", path, headers={"Authorization": f"Basic {token}"})
        return connection.getresponse().status
    finally:
        connection.close()


def healthz_answers(port: int) -> bool:
    try:
        return basic_get(port, "/healthz", "", timeout=2) == 200
    except OSError:
        return False


def guesses_checked_per_window(port: int, parallel: int = 30, timeout: float = 60) -> int:
    """After the free failures, waves of `parallel` simultaneous wrong guesses until one is checked
    (401 rather than 429): how many of that wave were checked. One is the throttle working."""
    for _ in range(FREE_FAILURES):
        basic_get(port, "/api/status", "wrong guess")
    barrier = threading.Barrier(parallel)

    def guess() -> int:
        barrier.wait()
        return basic_get(port, "/api/status", "wrong guess")

    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(parallel) as pool:
        while time.monotonic() < deadline:
            statuses = list(pool.map(lambda _: guess(), range(parallel)))
            if checked := statuses.count(401):
                return checked
    raise AssertionError(f"no guess was checked within {timeout} s")


def healthz_while_held(port: int, held: int = 500) -> tuple[int, float, int]:
    """Hold `held` connections open (half of them half-way through a request's headers), then ask
    /healthz. Returns its status (0: none within 15 s), its seconds, and how many held connections the
    server closed."""
    sockets = []
    try:
        for n in range(held):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            if n % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: kiosk\r\n")  # never finished
            sockets.append(sock)
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        try:
            connection.request("GET", "/healthz")
            status = connection.getresponse().status
        except OSError:
            status = 0  # no answer within 15 s, or the connection was dropped
        finally:
            connection.close()
        seconds = time.monotonic() - started
        return status, seconds, sum(_closed_by_server(sock) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def _closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
