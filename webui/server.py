"""Serves the web app with waitress (a production WSGI server) on a thread of the daemon: its
"web" part.

Held-open connections must not starve the page (a monitoring probe on /healthz, the technician): an
idle or half-open connection costs waitress a socket, not a thread, and there is room for
CONNECTION_LIMIT of them; at that limit the longest-idle connections are closed to admit new ones
(waitress alone would stop accepting until one times out), and any connection idle for
IDLE_TIMEOUT_S is closed.
"""

from __future__ import annotations

import heapq
import logging
import sqlite3
import threading
import time

from waitress.adjustments import Adjustments
from waitress.server import MultiSocketServer, TcpWSGIServer
from waitress.task import ThreadedTaskDispatcher

from daemon.config import WebConfig
from daemon.errors import UserError
from daemon.parts import Figure, PartStatus
from daemon.preflight import busy_port_message
from webui.app import WebBackend, create_app
from webui.auth import NO_ACCOUNT

log = logging.getLogger(__name__)

# Enough for a few browsers plus a Prometheus scrape; every request is short (no streaming response).
THREADS = 6
# Well under the 1024 descriptors a service gets by default, beside the daemon's own files.
CONNECTION_LIMIT = 256
IDLE_TIMEOUT_S = 30
CLEANUP_EVERY_S = 10
# Idle connections closed per turn of the loop at the limit: a burst of new ones gets in quickly.
CLOSED_PER_TURN = 16


class _RoomMakingServer(TcpWSGIServer):
    _warned_at = float("-inf")

    def readable(self) -> bool:
        """Called by waitress's loop before each poll; replaces waitress's stop-accepting-at-the-limit."""
        now = time.time()
        if now >= self.next_channel_cleanup:
            self.next_channel_cleanup = now + self.adj.cleanup_interval
            self.maintenance(now)
        if not self.accepting:
            return False
        if len(self._map) < self.adj.connection_limit:
            return True
        self._make_room(now)
        return False  # accepted on a later turn of the loop, once that connection has closed

    def _make_room(self, now: float) -> None:
        # will_close, not close(): the channel closes itself on its next turn, so its descriptor is not
        # reused by a new connection while this poll round still holds events for it.
        idle = [ch for ch in self.active_channels.values() if not ch.requests and not ch.will_close]
        for channel in heapq.nsmallest(CLOSED_PER_TURN, idle, key=lambda channel: channel.last_activity):
            channel.will_close = True
        if now - self._warned_at >= 60:  # once a minute at most, however many connections come
            self._warned_at = now
            log.warning("web: %d connections open; closing the longest idle to admit new ones", len(self._map))


class WebServer:
    name = "web"

    def __init__(self, host: str, port: int, app):
        adjustments = Adjustments(
            host=host, port=port, threads=THREADS, ident="proctord", connection_limit=CONNECTION_LIMIT,
            channel_timeout=IDLE_TIMEOUT_S, cleanup_interval=CLEANUP_EVERY_S,
            asyncore_use_poll=True,  # select() cannot watch a descriptor numbered 1024 or more
        )
        dispatcher = ThreadedTaskDispatcher()
        dispatcher.set_thread_count(THREADS)
        sockets: dict = {}
        try:
            servers = [_RoomMakingServer(app, sockets, dispatcher=dispatcher, adj=adjustments, sockinfo=info)
                       for info in adjustments.listen]
        except OSError as exc:  # taken since the start-up check: one line, not a traceback
            raise UserError(busy_port_message(host, port, exc)) from exc
        listening = [(server.effective_host, server.effective_port) for server in servers]
        self._server = MultiSocketServer(sockets, adjustments, listening, dispatcher, servers[0].log_info)
        self._thread = threading.Thread(target=self._server.run, name="web", daemon=True)
        self.url = f"http://{host}:{servers[0].effective_port}/"
        self._auth = app.extensions["proctord_auth"]

    @classmethod
    def for_daemon(cls, web: WebConfig, backend: WebBackend) -> WebServer:
        """Raises UserError naming the config key when the password setting cannot be used."""
        return cls(web.host, web.port, create_app(backend, web))

    def start(self) -> None:
        self._thread.start()
        log.info("web page on %s", self.url)

    def stop(self) -> None:
        self._server.close()
        self._thread.join(timeout=5)

    def status(self) -> PartStatus:
        try:
            accounts = self._auth.accounts_text()
            state, reason = ("ok", None) if self._auth.anyone_can_log_in() else ("degraded", NO_ACCOUNT)
        except sqlite3.Error as exc:  # the store not open yet, or failing: said, not a broken status
            accounts, state, reason = "unknown", "degraded", f"cannot read the users: {exc}"
        return PartStatus(self.name, state, reason, (
            Figure("url", "Address", self.url, kind="info"),
            Figure("accounts", "Who can log in", accounts, kind="info"),
        ), title="Web page")
