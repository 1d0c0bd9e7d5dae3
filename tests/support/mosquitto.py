"""A real Mosquitto broker (Debian ``mosquitto``, tools/system-deps.sh) as a private process on a
loopback port, for tests and bench/sinks.py. It keeps sessions and retained messages across a
restart (SIGTERM saves them), as a broker with persistence does."""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
from pathlib import Path

from shared.redis import free_port

MOSQUITTO = "/usr/sbin/mosquitto"


class Mosquitto:
    """A private broker that keeps its sessions and retained messages across a restart."""

    def __init__(self, folder: Path, *, tcp_nodelay: bool = True) -> None:
        """``tcp_nodelay``: the broker writes its small packets (PUBACKs) at once; without it (the
        default of mosquitto.conf) Nagle's algorithm and delayed ACKs cost ~40 ms an event."""
        if not Path(MOSQUITTO).exists():
            raise FileNotFoundError("no mosquitto: apt-get install mosquitto (tools/system-deps.sh)")
        self.port = free_port()
        self.folder = folder
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nlog_dest none\nuser {getpass.getuser()}\n"
            f"set_tcp_nodelay {'true' if tcp_nodelay else 'false'}\n"
        )
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Mosquitto:
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while not _listening(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto is not listening on port {self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """SIGTERM: the broker saves its sessions and retained messages and exits."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)
        self._process = None


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
