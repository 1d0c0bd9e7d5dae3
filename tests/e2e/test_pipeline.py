"""The spine as it is deployed: `vigil ingest`, `vigil detect` and `vigil alerts` as three
processes on a real Redis, the bundled pistol clip as a camera, and a plain ZeroMQ SUB socket of
the test's own. A pistol in the clip must come out as a `started` event whose box is where the
pistol is (the clip's ground truth)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
import yaml
import zmq

from alerts.history import history_since
from detector.boxes import iou_matrix_np
from shared import keys
from shared.redis import free_port
from shared.schemas import AlertEvent, Frame
from vigil.demo import SAMPLE

pytestmark = pytest.mark.slow
CAMERA = "gate"
GROUND_TRUTH = json.loads(SAMPLE.with_suffix(".json").read_text())


def _truth_at(pts_ms: int) -> list[tuple[float, float, float, float]]:
    """The pistol boxes of the clip frame shown at ``pts_ms``."""
    index = round(pts_ms * GROUND_TRUTH["fps"] / 1000)
    for image in GROUND_TRUTH["images"]:
        if image["frame_start"] <= index < image["frame_stop"]:
            return [tuple(box) for box in image["boxes"][index - image["frame_start"]]]
    return []


@pytest.fixture
def services(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The three services' processes (alerts and detect first, ingest once they are up); yields the
    alerts endpoint and the log folder, and stops them all with SIGTERM (which they must obey)."""
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    config = tmp_path / "vigil.yaml"
    config.write_text(yaml.safe_dump({
        "redis": {"url": redis_url},
        "ingest": {"metrics_port": None},
        "detector": {"metrics_port": None},
        "alerts": {"metrics_port": None, "publish_endpoint": endpoint},
        "cameras": [{"id": CAMERA, "url": str(SAMPLE), "fps": 5}],
    }))  # fmt: skip
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(service: str) -> None:
        log = (tmp_path / f"{service}.log").open("wb")
        procs[service] = subprocess.Popen(
            [sys.executable, "-m", "vigil", service, "-c", str(config)],
            env={**os.environ, "VIGIL_LOGGING_LEVEL": "INFO"}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    try:
        start("alerts")
        start("detect")
        owned = lambda: redis_client.exists(keys.lease_key("detect", CAMERA))  # noqa: E731
        deadline = time.monotonic() + 60
        while not owned():  # the detector has loaded its model and holds the camera
            assert all(p.poll() is None for p in procs.values()), _logs(tmp_path)
            assert time.monotonic() < deadline, "the detector never took the camera\n" + _logs(tmp_path)
            time.sleep(0.2)
        start("ingest")
        yield endpoint, tmp_path
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {name: proc.wait(timeout=30) for name, proc in procs.items()}
        assert codes == dict.fromkeys(procs, 0), f"{codes}\n{_logs(tmp_path)}"


def _logs(folder: Path) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in sorted(folder.glob("*.log")))


@pytest.mark.timeout(240)
def test_a_pistol_in_the_clip_comes_out_as_a_started_event_with_its_box(
    services: tuple[str, Path], redis_client: redis.Redis
) -> None:
    endpoint, logs = services
    context = zmq.Context.instance()
    with context.socket(zmq.SUB) as sub:
        sub.setsockopt(zmq.SUBSCRIBE, f"alert.{CAMERA}.".encode())
        sub.connect(endpoint)
        deadline = time.monotonic() + 120
        while True:
            remaining_ms = int(1000 * (deadline - time.monotonic()))
            assert remaining_ms > 0 and sub.poll(remaining_ms), "no alert within 2 minutes\n" + _logs(logs)
            topic, payload = sub.recv_multipart()
            event = AlertEvent.from_json(payload)
            if event.kind == "started":
                break

    assert topic == f"alert.{CAMERA}.pistol".encode()
    assert (event.rule, event.label, event.camera, event.severity) == ("gun", "pistol", CAMERA, "critical")
    assert event.score >= 0.6
    assert event.track_id is not None

    frame = next(
        Frame.decode(fields)
        for _id, fields in redis_client.xrange(keys.frames_stream(CAMERA))
        if int(fields[b"seq"]) == event.seq
    )
    width, height = GROUND_TRUTH["width"], GROUND_TRUTH["height"]
    assert (frame.width, frame.height) == (width, height)
    assert event.box_norm == pytest.approx(
        (event.box[0] / width, event.box[1] / height, event.box[2] / width, event.box[3] / height), abs=1e-3
    )
    truth = _truth_at(frame.pts_ms)
    assert truth, f"the alert's frame ({frame.pts_ms} ms) shows no pistol"
    best = float(iou_matrix_np(np.array([event.box]), np.array(truth)).max())
    assert best >= 0.5, f"alert box {event.box} vs ground truth {truth}: IoU {best:.2f}"

    history = {e.event_id for e in history_since(redis_client, 0)}
    assert event.event_id in history, "every published event is also in the history"
    assert event.snapshot and redis_client.exists(event.snapshot), "the snapshot is stored"
