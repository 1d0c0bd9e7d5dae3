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

    def __init__(
        self,
        folder: Path,
        *,
        tcp_nodelay: bool = True,
        tls: bool = False,
        users: dict[str, str] | None = None,
    ) -> None:
        """``tcp_nodelay``: the broker writes its small packets (PUBACKs) at once; without it (the
        default of mosquitto.conf) Nagle's algorithm and delayed ACKs cost ~40 ms an event.
        ``tls``: TLS only, with a certificate for ``localhost`` signed by :attr:`ca_file` (made
        here with openssl). ``users``: name → password, and no anonymous clients."""
        if not Path(MOSQUITTO).exists():
            raise FileNotFoundError("no mosquitto: apt-get install mosquitto (tools/system-deps.sh)")
        self.port = free_port()
        self.folder = folder
        self.conf = folder / "mosquitto.conf"
        self.ca_file = folder / "ca.crt"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if users else 'true'}",
            "persistence true",
            f"persistence_location {folder}/",
            "log_dest none",
            f"user {getpass.getuser()}",
            f"set_tcp_nodelay {'true' if tcp_nodelay else 'false'}",
        ]
        if tls:
            make_certificates(folder)
            lines += [
                f"cafile {self.ca_file}",
                f"certfile {folder / 'server.crt'}",
                f"keyfile {folder / 'server.key'}",
            ]
        if users:
            passwords = folder / "passwd"
            passwords.touch(mode=0o600)
            for name, password in users.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(passwords), name, password],
                    check=True,
                    capture_output=True,
                )
            lines.append(f"password_file {passwords}")
        self.conf.write_text("\n".join(lines) + "\n")
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


def make_certificates(folder: Path) -> None:
    """``ca.crt`` and ``server.crt``/``server.key`` (for localhost and 127.0.0.1), signed by it."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=vigil test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )
