"""Arbitrary request lines, headers and paths over a real socket to a real ``MetricsServer``."""

from __future__ import annotations

import logging
import re
import socket
import urllib.request
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter

from shared.metrics import MetricsServer
from tests.fuzz import FUZZ

STATUS_LINE = re.compile(rb"HTTP/1\.[01] [1-5][0-9]{2} ")

methods = st.one_of(st.sampled_from(["GET", "HEAD", "POST", "OPTIONS", "get", "PRI"]), st.text(max_size=8))
paths = st.one_of(
    st.sampled_from(["/metrics", "/healthz", "/readyz", "/", "//metrics", "/metrics?x=1", "*", "/%00", ""]),
    st.text(max_size=40).map(lambda s: "/" + s),
    st.text(max_size=40),
)
versions = st.one_of(
    st.sampled_from(["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/0.9", "HTTP/1", "HTTP/1.1.1", "HTTP/x.y", ""]),
    st.text(max_size=12),
)
headers = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(["Host", "Connection", "Expect", "Content-Length"]), st.text(max_size=20)),
        st.one_of(st.sampled_from(["close", "keep-alive", "100-continue", "-1", "9" * 30]), st.text()),
    ),
    max_size=8,
)
separators = st.sampled_from(["\r\n", "\n", "\r", "\r\n\r\n", "", " "])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """A request built from (mostly) plausible parts, or raw bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=200))
    parts = [draw(methods), draw(paths), draw(versions)]
    line = " ".join(part for part in parts if draw(st.integers(0, 5)))  # now and then a part is left out
    sep = draw(separators)
    lines = [line] + [f"{name}:{draw(st.sampled_from(['', ' ']))}{value}" for name, value in draw(headers)]
    text = sep.join(lines) + "\r\n\r\n"
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    return text.encode(encoding, errors="surrogateescape" if encoding == "utf-8" else "replace")


HUGE = [
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",  # request line over 64 KiB: 414
    b"GET /metrics HTTP/1.1\r\nX: " + b"b" * 70_000 + b"\r\n\r\n",  # a header line over 64 KiB: 431
    b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 150 + b"\r\n",  # over 100 headers: 431
]


class Failures(logging.Handler):
    """What the server logs about requests that failed in a handler (not a client going away)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


FAILURES = Failures()


@pytest.fixture(scope="module")
def server() -> Iterator[MetricsServer]:
    registry = CollectorRegistry()
    Counter("vigil_fuzz_requests", "Requests", registry=registry).inc()
    logging.getLogger("shared.metrics").addHandler(FAILURES)
    metrics = MetricsServer(registry, host="127.0.0.1", port=0, request_timeout_s=2.0)
    yield metrics
    metrics.close()
    logging.getLogger("shared.metrics").removeHandler(FAILURES)


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` then end our side; what came back before the server closed (b"" if
    nothing: a closed connection, or one reset while we were still sending)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    return received


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
        return reply.status


@pytest.mark.slow
@FUZZ
@given(request=st.one_of(requests(), st.sampled_from(HUGE)))
def test_any_request_gets_an_http_reply_or_a_closed_connection(server: MetricsServer, request: bytes) -> None:
    reply = exchange(server.port, request)
    assert reply == b"" or STATUS_LINE.match(reply), reply[:200]
    assert healthz(server.port) == 200


def test_good_requests_still_answer_after_the_fuzzing(server: MetricsServer) -> None:
    for request in HUGE:
        assert STATUS_LINE.match(exchange(server.port, request))
    reply = exchange(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 200 ") and b"vigil_fuzz_requests_total 1.0" in reply
    for http_09 in (b"GET /healthz\r\n\r\n", b"GET /healthz HTTP/0.9\r\n\r\n"):
        assert exchange(server.port, http_09).startswith(b"HTTP/1.0 505 ")
    assert healthz(server.port) == 200
    assert FAILURES.messages == [], "no request raised in a handler"
