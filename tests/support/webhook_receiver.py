"""A real HTTP receiver of webhooks on a loopback port, which fails, answers late or refuses as
its :class:`Script` says, and records every request (tests and bench/sinks.py)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    """What the receiver answers: the first ``fail_first`` requests 503, then ``timeouts`` requests
    answered too late, then ``reject`` event ids 400 (once each), everything else 200. While a
    ``gate`` is given and not set, requests wait for it (up to 30 s) before they are answered."""

    fail_first: int = 0
    timeouts: int = 0
    delay_s: float = 1.0
    reject: set[str] = field(default_factory=set)
    gate: threading.Event | None = None


@dataclass
class Request:
    key: str
    timestamp: str
    signature: str
    body: bytes
    status: int
    received_s: float
    """Wall-clock time the request's body was read."""


class Receiver:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received_s = time.time()
                if receiver.script.gate is not None:
                    receiver.script.gate.wait(30)
                status, delay_s = receiver._answer(json.loads(body)["event_id"])
                time.sleep(delay_s)
                with receiver._lock:
                    receiver.requests.append(
                        Request(
                            self.headers["Idempotency-Key"],
                            self.headers["X-Vigil-Timestamp"],
                            self.headers["X-Vigil-Signature"],
                            body,
                            status,
                            received_s,
                        )
                    )
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sink gave up waiting

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _answer(self, event_id: str) -> tuple[int, float]:
        with self._lock:
            if self.script.fail_first > 0:
                self.script.fail_first -= 1
                return 503, 0.0
            if self.script.timeouts > 0:
                self.script.timeouts -= 1
                return 200, self.script.delay_s  # too late: the sink has timed out
            if event_id in self.script.reject:
                self.script.reject.discard(event_id)
                return 400, 0.0
            return 200, 0.0

    def accepted(self) -> dict[str, list[Request]]:
        """Event id → the 2xx requests that carried it (timed-out ones count: the receiver has them)."""
        with self._lock:
            accepted: dict[str, list[Request]] = {}
            for request in self.requests:
                if 200 <= request.status < 300:
                    accepted.setdefault(json.loads(request.body)["event_id"], []).append(request)
            return accepted

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
