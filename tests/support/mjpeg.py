"""Reading a ``multipart/x-mixed-replace`` (MJPEG) stream as a browser does: part by part, each
with its headers, from a socket (tests/web and bench/web.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Part:
    headers: dict[str, str]
    jpeg: bytes
    received_ns: int
    """When its last byte arrived (this host's wall clock)."""


def parts(reply: httpx.Response) -> Iterator[Part]:
    """The parts of a streamed reply (``client.stream(...)``), in order, as they arrive."""
    buffer = b""
    chunks = reply.iter_raw()
    while True:
        while b"\r\n\r\n" not in buffer:
            buffer += next(chunks)
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("ascii").strip().split("\r\n")
        assert lines[0].startswith("--"), lines
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        size = int(headers["content-length"])
        while len(buffer) < size + 2:
            buffer += next(chunks)
        yield Part(headers, buffer[:size], time.time_ns())
        buffer = buffer[size + 2 :]
