"""Two `vigil detect` processes share four cameras; kill -9 one and the other takes all four."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from shared import keys
from shared.schemas import Detections
from tests.detector.conftest import jpeg_frame, push
from tests.support.services import wait_for

CAMERAS = ["cam-1", "cam-2", "cam-3", "cam-4"]
TTL_S = 2.0
FAILOVER_BOUND_S = TTL_S + TTL_S / 3 + 2.0
"""The contract: a dead replica's leases expire after the TTL and a survivor's next lease round
(every TTL/3) takes them; 2 s more for the first frames through a loaded 2-core CI machine."""
pytestmark = pytest.mark.slow


@pytest.fixture
def feeder(redis_client: redis.Redis) -> Iterator[None]:
    """Publishes a fresh frame to every camera five times a second."""
    stop = threading.Event()

    def feed() -> None:
        seq = 0
        while not stop.wait(0.2):
            for camera in CAMERAS:
                push(redis_client, jpeg_frame(camera, seq, 160, 120))
            seq += 1

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join()


def test_replicas_split_cameras_and_fail_over(
    redis_client: redis.Redis, redis_url: str, tiny_checkpoint: Path, tmp_path: Path, feeder: None
) -> None:
    config = tmp_path / "vigil.yaml"
    config.write_text(yaml.safe_dump({
        "redis": {"url": redis_url},
        "detector": {"lease_ttl_s": TTL_S, "metrics_port": None, "weights": str(tiny_checkpoint)},
        "cameras": [{"id": camera, "url": f"rtsp://example/{camera}"} for camera in CAMERAS],
    }))  # fmt: skip
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vigil", "detect", "-c", str(config)],
            env={**os.environ, "VIGIL_DETECTOR_INSTANCE": name, "VIGIL_DETECTOR_TORCH_THREADS": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("d1", "d2")
    ]
    try:

        def owners() -> list[str | None]:
            values = redis_client.mget([keys.lease_key("detect", camera) for camera in CAMERAS])
            return [v.decode() if v else None for v in values]

        assert wait_for(lambda: sorted(map(str, owners())) == ["d1", "d1", "d2", "d2"], 60), owners()
        procs[0].kill()
        killed_ns, killed = time.time_ns(), time.monotonic()

        def all_served_after_kill() -> bool:
            streams = map(keys.detections_stream, CAMERAS)
            recent = [fields for s in streams for _id, fields in redis_client.xrevrange(s, count=5)]
            fresh = {m.camera for m in map(Detections.decode, recent) if m.ts_ns > killed_ns}
            return set(owners()) == {"d2"} and fresh == set(CAMERAS)

        assert wait_for(all_served_after_kill, TTL_S + 10)
        took = time.monotonic() - killed
        assert took <= FAILOVER_BOUND_S, f"failover took {took:.2f}s"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
