"""Test media helpers: synthetic H.264 clips and a real RTSP server subprocess.

The RTSP server itself (``rtsp_server.py``) needs PyGObject and the GStreamer RTSP server
bindings, which only the system Python has, so ``RtspServer`` runs it as a subprocess under
``SYSTEM_PYTHON``; nothing here imports ``gi``.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, NoReturn, Self
from urllib.parse import quote

FFMPEG = os.environ.get("VIGIL_TEST_FFMPEG") or shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
SYSTEM_PYTHON = os.environ.get("VIGIL_TEST_GI_PYTHON", "/usr/bin/python3")
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
READY_PREFIX = "READY "


def make_h264_clip(path: str | Path, *, seconds: float, fps: int, width: int, height: int) -> Path:
    """Encode a moving ``testsrc2`` pattern into an H.264 mp4 (no audio, keyframe every second)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}:duration={seconds}",
        "-an", "-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p",
        "-g", str(fps), "-keyint_min", str(fps), "-sc_threshold", "0",
        "-movflags", "+faststart", str(path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not path.is_file():
        raise RuntimeError(f"ffmpeg failed to make {path} (rc={result.returncode}):\n{result.stderr}")
    return path


@functools.cache
def missing_prerequisites() -> str | None:
    """Why RtspServer cannot run here (no ffmpeg, no GStreamer RTSP bindings), or None."""
    if not Path(FFMPEG).is_file():
        return f"ffmpeg not found at {FFMPEG}"
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0'); gi.require_version('GstApp', '1.0')"
        "; from gi.repository import GstRtspServer, GstApp"
    )
    try:
        result = subprocess.run(
            [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot run {SYSTEM_PYTHON}: {error}"
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["?"])[-1]
        return f"{SYSTEM_PYTHON} lacks the GStreamer RTSP server bindings: {last_line}"
    return None


def free_tcp_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RtspServerError(RuntimeError):
    """The RTSP test server did not start or stop as expected."""


class RtspServer:
    """A looping RTSP server for one clip, run as a subprocess of the system Python.

    Use as a context manager, or call ``start()``/``stop()``. ``restart()`` brings the
    server back on the same port, e.g. to test reconnection after a camera outage.
    """

    def __init__(
        self,
        clip: str | Path,
        *,
        port: int | None = None,
        path: str = "/cam",
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self.clip = Path(clip)
        self.port = port if port is not None else free_tcp_port()
        self.path = path if path.startswith("/") else "/" + path
        self.user = user
        self.password = password
        self._proc: subprocess.Popen[bytes] | None = None
        self._stdout: IO[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The stream URL, without credentials."""
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    @property
    def url_with_credentials(self) -> str:
        """The stream URL with ``user:password@`` (same as ``url`` when auth is off)."""
        if self.user is None or self.password is None:
            return self.url
        userinfo = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"rtsp://{userinfo}@127.0.0.1:{self.port}{self.path}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The command line that runs the server."""
        command = [
            SYSTEM_PYTHON, str(SERVER_SCRIPT),
            "--clip", str(self.clip), "--port", str(self.port), "--path", self.path,
        ]  # fmt: skip
        if self.user is not None and self.password is not None:
            command += ["--user", self.user, "--password", self.password]
        return command

    def start(self, timeout: float = 10) -> Self:
        """Start the server and wait until it prints READY; raise RtspServerError otherwise."""
        if self.running:
            raise RtspServerError(f"RTSP server already running on {self.url}")
        if why := missing_prerequisites():
            raise RtspServerError(f"cannot run the RTSP test server: {why} (run tools/system-deps.sh)")
        self._close_logs()
        # The logs live as long as the server process; _close_logs() closes them.
        self._stdout = tempfile.TemporaryFile()  # noqa: SIM115
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=self._stdout, stderr=self._stderr
        )
        deadline = time.monotonic() + timeout
        while True:
            if READY_PREFIX.encode() in self._read(self._stdout):
                return self
            if self._proc.poll() is not None:
                self._fail(f"RTSP server exited with status {self._proc.returncode}")
            if time.monotonic() >= deadline:
                self.kill()
                self._fail(f"RTSP server not ready after {timeout:g} s")
            time.sleep(0.02)

    def stop(self, timeout: float = 5) -> None:
        """Stop the server with SIGTERM and wait for it (SIGKILL if it does not exit in time)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise RtspServerError(
                    f"RTSP server ignored SIGTERM for {timeout:g} s; killed it.\n{self.stderr()}"
                ) from None
        self._proc = None

    def kill(self) -> None:
        """Kill the server with SIGKILL (an abrupt camera loss) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        self._proc = None

    def restart(self, timeout: float = 10) -> Self:
        """Stop the server (if running) and start it again on the same port."""
        self.stop()
        return self.start(timeout)

    def stderr(self) -> str:
        """What the current (or last) server process wrote to stderr."""
        return self._read(self._stderr).decode(errors="replace")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self._close_logs()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RtspServer({self.url!r}, clip={str(self.clip)!r}, {state})"

    @staticmethod
    def _read(log: IO[bytes] | None) -> bytes:
        if log is None:
            return b""
        log.seek(0)
        return log.read()

    def _fail(self, reason: str) -> NoReturn:
        stderr = self.stderr().strip() or "(nothing on stderr)"
        self._proc = None
        command = " ".join("***" if arg == self.password else arg for arg in self.command())
        raise RtspServerError(f"{reason}: {command}\nserver stderr:\n{stderr}")

    def _close_logs(self) -> None:
        for log in (self._stdout, self._stderr):
            if log is not None:
                log.close()
        self._stdout = self._stderr = None
