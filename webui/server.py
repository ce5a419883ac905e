"""Serves the web app with waitress (a production WSGI server) on a thread of the daemon."""

from __future__ import annotations

import logging
import threading

from waitress.server import create_server

from webui.app import create_app

log = logging.getLogger(__name__)


class WebServer:
    def __init__(self, host: str, port: int, app):
        self._server = create_server(app, host=host, port=port, threads=4, ident="proctord")
        self._thread = threading.Thread(target=self._server.run, name="web", daemon=True)
        self.url = f"http://{host}:{self._server.effective_port}/"

    @classmethod
    def for_daemon(cls, config, status, reader) -> WebServer:
        return cls(config.web.host, config.web.port, create_app(status, reader, config.rules))

    def start(self) -> None:
        self._thread.start()
        log.info("web page on %s", self.url)

    def stop(self) -> None:
        self._server.close()
        self._thread.join(timeout=5)
