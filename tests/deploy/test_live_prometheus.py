"""The observability stack against the real thing: ``vigil demo`` runs the whole pipeline on the
bundled clip with its metrics endpoints up, a real Prometheus (Debian's package) scrapes them with
the shipped config, and every Grafana panel's PromQL, run through Prometheus's HTTP API, returns
data. Each endpoint also passes ``promtool check metrics`` as it is served."""

from __future__ import annotations

import json
import math
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from tests.deploy.observability import dashboard_queries, local_prometheus_config, promtool_check_metrics

pytestmark = pytest.mark.slow

JOBS = ("vigil-ingest", "vigil-detector", "vigil-alerts")
"""In the order of the demo's ports: ``--metrics-port P`` serves them on P, P + 1, P + 2."""


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError(f"no {count} consecutive free ports")


def _get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _query(prometheus: str, expr: str) -> list[dict]:
    body = json.loads(_get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})))
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A real Prometheus scraping the shipped jobs every second at the demo's future ports;
    yields its URL and the first of those ports."""
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package (tools/system-deps.sh)"
    first = _free_ports(len(JOBS) + 1)
    targets = {job: f"127.0.0.1:{first + i}" for i, job in enumerate(JOBS)}
    config = local_prometheus_config(tmp_path, targets, scrape_interval="1s", only=True)  # demo: no sinks
    address = f"127.0.0.1:{first + len(JOBS)}"
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address={address}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://{address}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(f"{url}/-/ready", timeout=1)
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
                assert time.monotonic() < deadline, "Prometheus did not become ready"
                time.sleep(0.2)
        yield url, first
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _lines(stream: IO[str]) -> queue.Queue[str | None]:
    """The demo's stdout, line by line, from a reader thread (None at the end)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _panels_without_data(prometheus: str) -> list[str]:
    """Dashboard targets (camera "All") whose query returns no series or a non-finite value."""
    missing = []
    for title, ref, expr in dashboard_queries(".*"):
        result = _query(prometheus, expr)
        values = [float(series["value"][1]) for series in result]
        if not values or not all(math.isfinite(v) for v in values):
            missing.append(f"{title} [{ref}]: {values or 'no series'}  ({expr})")
    return missing


@pytest.mark.timeout(300)
def test_every_dashboard_panel_has_data_while_the_demo_runs(prometheus: tuple[str, int]) -> None:
    url, first_port = prometheus
    demo = subprocess.Popen(
        [sys.executable, "-m", "vigil", "demo", "--metrics-port", str(first_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    output: list[str] = []
    try:
        lines = _lines(demo.stdout)
        while not any(" STARTED " in line for line in output):  # the first gun alert
            line = lines.get(timeout=120)
            assert line is not None, "the demo ended without an alert:\n" + "".join(output)
            output.append(line)

        for i, job in enumerate(JOBS):  # the endpoints as Prometheus scrapes them
            exposition = _get(f"http://127.0.0.1:{first_port + i}/metrics").decode()
            checked = promtool_check_metrics(exposition)
            assert checked.returncode == 0, (job, checked.stdout + checked.stderr)

        # rates need two scrapes after the alert; the clip plays for another ~20 s
        deadline = time.monotonic() + 15
        while (missing := _panels_without_data(url)) and time.monotonic() < deadline:
            time.sleep(1)
        assert demo.poll() is None, "the demo was still running while the panels were queried"
        assert not missing, "panels without data:\n" + "\n".join(missing)

        up = {s["metric"]["job"]: s["value"][1] for s in _query(url, "up")}
        assert up == dict.fromkeys(JOBS, "1")
        owned = _query(url, 'vigil_ingest_camera_up{camera="demo-1"}')
        assert [s["value"][1] for s in owned] == ["1"]

        demo.send_signal(signal.SIGINT)  # Ctrl-C: the demo stops its services and prints its summary
        while (line := lines.get(timeout=120)) is not None:
            output.append(line)
        assert demo.wait(timeout=60) == 0, "".join(output)
        assert any("frames ingested" in line for line in output), "".join(output)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
