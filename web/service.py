"""``vigil web``: the console on uvicorn, and its metrics endpoint.

``WebService(config, console).run()`` serves until ``stop()`` or SIGTERM (uvicorn's own handlers
when run on the main thread); open live streams and alert feeds are cut after
:data:`GRACEFUL_S`. The listening socket is bound in the constructor, so a port in use is an
:class:`EndpointError` at once, and ``port`` is known before ``run()`` (``web.port: 0``).
"""

from __future__ import annotations

import logging
import socket

import uvicorn

from shared.config import WebConfig
from shared.errors import EndpointError
from shared.metrics import serve_metrics
from web.app import create_app
from web.console import Console

log = logging.getLogger(__name__)
GRACEFUL_S = 2.0
"""Seconds open connections (live streams never end by themselves) get at shutdown."""


class WebService:
    def __init__(self, config: WebConfig, console: Console) -> None:
        self.config, self.console = config, console
        self._socket = _bind(config.host, config.port)
        self.port: int = self._socket.getsockname()[1]
        self._server = uvicorn.Server(
            uvicorn.Config(
                create_app(console),
                log_level="warning",
                access_log=False,
                proxy_headers=False,
                timeout_graceful_shutdown=GRACEFUL_S,
                lifespan="off",
            )
        )

    @property
    def url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"http://{host}:{self.port}/"

    def run(self) -> None:
        metrics = serve_metrics(self.config, self.console.metrics.registry, ready=self.console.redis_answers)
        log.info("console on %s (login %s)", self.url, "on" if self.console.auth_enabled else "off")
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self._socket.close()
            if metrics is not None:
                metrics.close()

    def stop(self) -> None:
        self._server.should_exit = True

    @property
    def started(self) -> bool:
        return self._server.started


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise EndpointError(f"web {host}:{port}: cannot listen ({error.strerror})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
