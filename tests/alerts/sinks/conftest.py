"""Sink test parts: a real Mosquitto broker on a loopback port, a real HTTP receiver that can be
told to fail, events recorded in the real history."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from alerts.history import AlertHistory
from shared.redis import free_port
from shared.schemas import AlertEvent

MOSQUITTO = "/usr/sbin/mosquitto"
SECRET = "whsec-0123456789-do-not-log"


def event(
    n: int, *, camera: str = "cam1", kind: str = "started", rule: str = "gun", snapshot: str | None = None
) -> AlertEvent:
    first_seen_ns = 1_700_000_000_000_000_000 + n
    return AlertEvent(
        event_id=f"{camera}-{rule}-{n:04d}-{kind}",
        kind=kind,  # type: ignore[arg-type]
        rule=rule,
        severity="critical",
        camera=camera,
        label="pistol",
        score=0.9,
        box=(10.0, 20.0, 50.0, 80.0),
        box_norm=(0.1, 0.1, 0.2, 0.3),
        frame_width=640,
        frame_height=480,
        track_id=n,
        first_seen_ns=first_seen_ns,
        ts_ns=time.time_ns(),
        seq=n,
        snapshot=snapshot,
    )


def record(client: redis.Redis, *events: AlertEvent) -> None:
    history = AlertHistory(client, maxlen=10_000)
    for item in events:
        assert history.record(item) is not None


class Mosquitto:
    """A private broker that keeps its sessions and retained messages across a restart."""

    def __init__(self, folder: Path) -> None:
        if not Path(MOSQUITTO).exists():
            pytest.skip("no mosquitto: apt-get install mosquitto (tools/system-deps.sh)")
        self.port = free_port()
        self.folder = folder
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nlog_dest none\nuser {_user()}\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            assert self._process.poll() is None, "mosquitto exited"
            assert time.monotonic() < deadline, "mosquitto is not listening"
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """SIGTERM: the broker saves its sessions and retained messages and exits."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None


def _user() -> str:
    import getpass

    return getpass.getuser()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path).start()
    yield server
    server.stop()


@dataclass
class Script:
    """What the receiver answers: the first ``fail_first`` requests 503, then ``timeouts`` requests
    answered too late, then ``reject`` event ids 400 (once each), everything else 200."""

    fail_first: int = 0
    timeouts: int = 0
    delay_s: float = 1.0
    reject: set[str] = field(default_factory=set)


@dataclass
class Request:
    key: str
    timestamp: str
    signature: str
    body: bytes
    status: int


class Receiver:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(Script())
    yield server
    server.close()
