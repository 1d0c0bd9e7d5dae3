"""Several `vigil ingest` processes sharing cameras through leases; signals; the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from shared import keys
from shared.schemas import Frame
from tests.ingest.conftest import VTEST
from tests.support.services import wait_for

CAMERAS = ["cam-1", "cam-2", "cam-3", "cam-4"]
TTL_S = 2.0
FAILOVER_BOUND_S = TTL_S + TTL_S / 3 + 2.0
"""The contract: a dead worker's leases expire after the TTL and a survivor's next lease round
(every TTL/3) takes them; 2 s more for the first frames through a loaded 2-core CI machine."""


@pytest.fixture
def config_file(tmp_path: Path, redis_url: str) -> Path:
    config = {
        "redis": {"url": redis_url},
        "ingest": {"lease_ttl_s": TTL_S, "metrics_port": None, "registry_interval_s": 0.5},
        "cameras": [
            {"id": cam, "url": str(VTEST), "fps": 2, "max_side": 160, "loop": True} for cam in CAMERAS
        ],
    }
    path = tmp_path / "vigil.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_worker(config: Path, instance: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "vigil", "ingest", "-c", str(config)],
        env={**os.environ, "VIGIL_INGEST_INSTANCE": instance, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def workers(config_file: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def owners(client: redis.Redis) -> dict[str, str | None]:
    values = client.mget([keys.lease_key("ingest", cam) for cam in CAMERAS])
    return {cam: v.decode() if v else None for cam, v in zip(CAMERAS, values, strict=True)}


def newest_frame(client: redis.Redis, camera: str) -> Frame | None:
    entries = client.xrevrange(keys.frames_stream(camera), count=1)
    return Frame.decode(entries[0][1]) if entries else None


def test_two_workers_split_four_cameras_and_survive_a_kill(
    redis_client: redis.Redis, config_file: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    workers += [start_worker(config_file, "w1"), start_worker(config_file, "w2")]

    def split_evenly() -> bool:
        held = list(owners(redis_client).values())
        return held.count("w1") == 2 and held.count("w2") == 2

    assert wait_for(split_evenly, 20), owners(redis_client)
    assert wait_for(lambda: all(newest_frame(redis_client, cam) for cam in CAMERAS), 10)

    victim = workers[0]
    victim.kill()  # kill -9: no lease is released
    killed_ns = time.time_ns()
    killed = time.monotonic()

    def all_served_by_survivor() -> bool:
        if set(owners(redis_client).values()) != {"w2"}:
            return False
        return all((f := newest_frame(redis_client, cam)) and f.ts_ns > killed_ns for cam in CAMERAS)

    assert wait_for(all_served_by_survivor, TTL_S + 5)
    took = time.monotonic() - killed
    assert took <= FAILOVER_BOUND_S, f"failover took {took:.2f}s"


def test_sigterm_releases_leases_and_exits_zero(
    redis_client: redis.Redis, config_file: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    workers.append(start_worker(config_file, "solo"))
    assert wait_for(lambda: set(owners(redis_client).values()) == {"solo"}, 20)
    workers[0].send_signal(signal.SIGTERM)
    assert workers[0].wait(timeout=15) == 0
    assert set(owners(redis_client).values()) == {None}, "leases handed back, not left to expire"
    assert redis_client.zscore(keys.members_key("ingest"), "solo") is None
    assert not redis_client.keys("vigil:heartbeat:*"), "no service writes a heartbeat key any more"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_cli_refuses_a_broken_config_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  - {id: door, url: 'rtsp://u:pw9876@cam/s', fps: many}\n")
    result = run_cli("ingest", "-c", str(bad))
    assert result.returncode == 2
    assert str(bad) in result.stderr and "cameras[0].fps" in result.stderr
    assert "pw9876" not in result.stderr


def test_cli_version_help_and_cameras_table(redis_client: redis.Redis, config_file: Path) -> None:
    assert run_cli("--version").stdout.startswith("vigil ")
    help_text = run_cli("--help").stdout
    assert all(command in help_text for command in ("ingest", "cameras", "demo"))
    result = run_cli("ingest", "-c", str(config_file), "--burst", "--max-frames", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    table = run_cli("cameras", "-c", str(config_file)).stdout
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["CAMERA", "STATE", "OWNER"]
    assert sorted(line.split()[0] for line in lines[1:]) == CAMERAS
    assert all(" ended " in line for line in lines[1:])


def test_check_reports_readiness(redis_client: redis.Redis, config_file: Path, workers: list) -> None:
    port = "19117"
    env = {"VIGIL_INGEST_METRICS_PORT": port}
    assert run_cli("ingest", "-c", str(config_file), "--check", env=env).returncode == 1
    workers.append(start_worker(config_file, "checked", VIGIL_INGEST_METRICS_PORT=port))
    assert wait_for(lambda: run_cli("ingest", "-c", str(config_file), "--check", env=env).returncode == 0, 20)
