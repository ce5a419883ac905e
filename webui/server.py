"""Serves the web app with waitress (a production WSGI server) on a thread of the daemon: its "web" part."""

from __future__ import annotations

import logging
import threading

from waitress.server import create_server

from daemon.config import WebConfig
from daemon.parts import Figure, PartStatus
from webui.app import WebBackend, create_app

log = logging.getLogger(__name__)

# Enough for a few browsers plus a Prometheus scrape; every request is short (no streaming response).
THREADS = 6


class WebServer:
    name = "web"

    def __init__(self, host: str, port: int, app):
        self._server = create_server(app, host=host, port=port, threads=THREADS, ident="proctord")
        self._thread = threading.Thread(target=self._server.run, name="web", daemon=True)
        self.url = f"http://{host}:{self._server.effective_port}/"

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
        return PartStatus(self.name, "ok", None, (Figure("url", "Address", self.url, kind="info"),), title="Web page")
