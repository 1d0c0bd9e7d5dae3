"""The HTTP endpoint every service exposes: ``/metrics`` (Prometheus), ``/healthz`` (live) and
``/readyz`` (ready: the service says when, e.g. Redis reachable and leases held)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.config import ServiceConfig
from shared.errors import EndpointError

log = logging.getLogger(__name__)


class MetricsServer:
    """Serves a registry and health probes on a background thread; ``port=0`` picks a free port."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "0.0.0.0",
        port: int = 0,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        handler = _make_handler(registry, ready)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _make_handler(registry: CollectorRegistry, ready: Callable[[], bool]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._reply(200, b"ok\n")
            elif path == "/readyz":
                is_ready = ready()
                self._reply(200 if is_ready else 503, b"ready\n" if is_ready else b"not ready\n")
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
    config: ServiceConfig, registry: CollectorRegistry, *, ready: Callable[[], bool]
) -> MetricsServer | None:
    """The endpoint a service's config section asks for; None when ``metrics_port`` is None."""
    if config.metrics_port is None:
        return None
    try:
        return MetricsServer(registry, host=config.metrics_host, port=config.metrics_port, ready=ready)
    except OSError as error:  # in use, or an address this host does not have
        raise EndpointError(
            f"metrics endpoint {config.metrics_host}:{config.metrics_port}: cannot listen ({error.strerror})"
        ) from None
