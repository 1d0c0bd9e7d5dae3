"""Bad values on the command line or in the config end a command with one line and exit 2 (3 when
Redis is down), never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def vigil(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vigil", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *expected: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("vigil: "), result.stderr
    for text in expected:
        assert text in lines[-1]


def test_a_duration_that_does_not_parse() -> None:
    one_line_error(vigil("subscribe", "--since", "xyz"), 2, "not a duration: 'xyz'", "e.g. 90s")


def test_an_endpoint_that_is_not_an_address() -> None:
    one_line_error(vigil("subscribe", "--endpoint", "notaurl"), 2, "'notaurl'", "cannot connect")


@pytest.mark.parametrize("endpoint", ["tcp://no.such.host.invalid:5556", "notaurl"])
def test_a_publish_endpoint_that_cannot_bind(tmp_path: Path, endpoint: str) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(f"alerts: {{publish_endpoint: '{endpoint}', metrics_port: null}}\n")
    one_line_error(vigil("alerts", "-c", str(config)), 2, "alerts.publish_endpoint", "cannot bind")


def test_a_metrics_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "vigil.yaml"
        config.write_text(
            f"alerts: {{metrics_host: 127.0.0.1, metrics_port: {port}, publish_endpoint: 'tcp://127.0.0.1:0'}}\n"
        )
        one_line_error(vigil("alerts", "-c", str(config)), 2, f"127.0.0.1:{port}", "cannot listen")


def test_detect_with_no_cameras_and_redis_down() -> None:
    one_line_error(vigil("detect", env={"VIGIL_REDIS_URL": "redis://127.0.0.1:1/0"}), 3, "redis unavailable")
