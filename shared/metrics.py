"""The HTTP endpoint every service exposes: ``/metrics`` (Prometheus), ``/healthz`` (live) and
``/readyz`` (ready: the service says when, e.g. Redis reachable and leases held).

One thread serves each connection. A client gets :data:`REQUEST_TIMEOUT_S` to send its request
(and to read the reply), so a half-open or slowloris connection cannot hold a thread forever;
connections wait in a listen backlog of :data:`LISTEN_BACKLOG`. Anything that is not a good
request gets an HTTP error status or a closed connection; HTTP/0.9 (a bare body) is not served.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.config import EndpointConfig
from shared.errors import EndpointError

log = logging.getLogger(__name__)
REQUEST_TIMEOUT_S = 10.0
"""Seconds a connection may stay silent (while sending its request or reading the reply)."""
LISTEN_BACKLOG = 128
"""Connections the kernel queues before the server accepts them (socketserver's default is 5)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up mid-reply is routine (a scrape that timed out): no traceback on
        stderr. Anything else is a bug in a handler, logged with its traceback."""
        if isinstance(sys.exc_info()[1], OSError):
            log.debug("metrics client %s went away", client_address, exc_info=True)
        else:
            log.warning("metrics request from %s failed", client_address, exc_info=True)


class MetricsServer:
    """Serves a registry and health probes on a background thread; ``port=0`` picks a free port."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ready: Callable[[], bool] = lambda: True,
        note: Callable[[], str | None] = lambda: None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        """``note``: a line ``/readyz`` adds to its answer (e.g. a degraded mode), or None."""
        handler = _make_handler(registry, ready, note, timeout_s=request_timeout_s)
        self._server = _Server((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _make_handler(
    registry: CollectorRegistry, ready: Callable[[], bool], note: Callable[[], str | None], *,
    timeout_s: float,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = timeout_s  # StreamRequestHandler sets it on the connection: a silent client is cut off

        def parse_request(self) -> bool:
            if not super().parse_request():
                return False
            if self.request_version == "HTTP/0.9":  # said so, or a request line without a version
                self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/0.9 is not served")
                return False
            return True

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            self.request_version = "HTTP/1.0"  # http.server writes no status line for HTTP/0.9
            super().send_error(code, message, explain)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._reply(200, b"ok\n")
            elif path == "/readyz":
                is_ready, line = ready(), note()
                body = ("ready\n" if is_ready else "not ready\n") + (f"{line}\n" if line else "")
                self._reply(200 if is_ready else 503, body.encode())
            else:
                self._reply(404, b"not found\n")

        def _reply(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # scrapes every few seconds would flood the log

    return Handler


def serve_metrics(
    config: EndpointConfig, registry: CollectorRegistry, *, ready: Callable[[], bool],
    note: Callable[[], str | None] = lambda: None,
) -> MetricsServer | None:
    """The endpoint a service's config section asks for; None when ``metrics_port`` is None."""
    if config.metrics_port is None:
        return None
    try:
        return MetricsServer(
            registry, host=config.metrics_host, port=config.metrics_port, ready=ready, note=note
        )
    except OSError as error:  # in use, or an address this host does not have
        raise EndpointError(
            f"metrics endpoint {config.metrics_host}:{config.metrics_port}: cannot listen ({error.strerror})"
        ) from None
