"""The metrics endpoint under slow and half-open clients: a real server, real sockets."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

from prometheus_client import CollectorRegistry, Counter

from shared.metrics import LISTEN_BACKLOG, REQUEST_TIMEOUT_S, MetricsServer
from tests.support.services import wait_for


def request_threads() -> int:
    """Threads that socketserver started for a connection (named after their target)."""
    return sum(1 for thread in threading.enumerate() if thread.name.endswith("(process_request_thread)"))


def test_defaults_bound_a_silent_client_and_queue_more_than_five_connections() -> None:
    assert 0 < REQUEST_TIMEOUT_S <= 30
    assert LISTEN_BACKLOG > 5
    server = MetricsServer(CollectorRegistry(), host="127.0.0.1", port=0)
    try:
        assert server._server.request_queue_size == LISTEN_BACKLOG
        assert server._server.RequestHandlerClass.timeout == REQUEST_TIMEOUT_S
    finally:
        server.close()


def test_slowloris_connections_neither_block_metrics_nor_keep_their_threads() -> None:
    registry = CollectorRegistry()
    Counter("vigil_test_scrapes", "Scrapes", registry=registry).inc()
    server = MetricsServer(registry, host="127.0.0.1", port=0, request_timeout_s=1.0)
    baseline = request_threads()
    slow: list[socket.socket] = []
    try:
        for _ in range(20):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            sock.sendall(b"GET /metr")  # a partial request line, and then nothing
            slow.append(sock)
        assert wait_for(lambda: request_threads() >= baseline + 20, 5), "each slow client holds a thread"

        started = time.monotonic()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=1) as reply:
            body = reply.read()
        assert reply.status == 200 and b"vigil_test_scrapes_total 1.0" in body
        assert time.monotonic() - started < 1.0

        assert wait_for(lambda: request_threads() <= baseline, 5), "threads are freed after the timeout"
        for sock in slow:
            assert sock.recv(1024) == b"", "a timed-out connection is closed without a reply"
    finally:
        for sock in slow:
            sock.close()
        server.close()
