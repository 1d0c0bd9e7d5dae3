"""The deployed pipeline (``vigil ingest``, ``detect``, ``alerts`` as processes, raw ZeroMQ
subscribers) on a real Redis Cluster of 3 masters and 3 replicas, with cameras on all three masters.
An alert arrives end to end; then the master holding the alert history (and one camera) is killed:
its replica is promoted, every service rides it out without a restart, every camera's detections
flow again, new alerts arrive, no event is recorded or delivered twice and none recorded before the
kill is lost; ``vigil subscribe --since`` replays the history from the cluster.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.subscriber import AlertSubscriber
from shared import keys
from shared.config import RedisConfig
from shared.redis import connect, free_port
from tests.chaos.pipeline import SAMPLE, EventCollector, Pipeline, assert_delivered_once, drain
from tests.shared.test_cluster import spread_cameras
from tests.support.redis_cluster import LocalRedisCluster

pytestmark = pytest.mark.slow
CAMERA_FPS = 3
RESUME_BOUND_S = 15.0
"""Failover (node timeout 1 s, then the election) plus a lease round and a reconnect backoff."""


def dropped(port: int, metric: str) -> float:
    """Sum of a service's ``metric`` samples with ``reason="redis_unavailable"``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == metric and sample.labels.get("reason") == "redis_unavailable"
    )


@pytest.mark.timeout(240)
def test_a_master_dies_and_the_pipeline_resumes_on_its_promoted_replica(tmp_path: Path) -> None:
    cluster = LocalRedisCluster().start()
    ports = {service: free_port() for service in ("ingest", "detect", "alerts")}
    client = connect(RedisConfig(url=cluster.url))
    cameras = [{"id": camera, "url": str(SAMPLE), "fps": CAMERA_FPS, "loop": True}
               for camera in spread_cameras(client, 3)]  # fmt: skip
    client.close()
    pipeline = Pipeline(tmp_path, cluster.url, metrics_ports=ports, cameras=cameras)
    try:
        nodes = {pipeline.client.get_node_from_key(keys.frames_stream(c)).port for c in pipeline.cameras}
        assert len(nodes) == 3, "the cameras' keys live on the three masters"
        with EventCollector(pipeline.endpoint, name="subscriber") as subscriber:
            pipeline.start_all()
            pipeline.wait(lambda: subscriber.started_after(0), 90, "an alert end to end")

            victim = pipeline.client.get_node_from_key(keys.ALERTS).port
            assert victim in nodes, "the killed master holds a camera too"
            before = pipeline.history()
            cluster.wait_replicated(victim)  # replication is asynchronous: what the replica has
            pids = pipeline.pids()
            cluster.kill(victim)
            killed_ns, killed = time.time_ns(), time.monotonic()

            promoted_s = cluster.wait_served(keys.ALERTS, RESUME_BOUND_S)
            flowing = lambda: all(pipeline.detections_after(killed_ns, c) for c in pipeline.cameras)  # noqa: E731
            pipeline.wait(flowing, RESUME_BOUND_S, "every camera's detections flow again")
            resumed_s = time.monotonic() - killed
            pipeline.wait(lambda: subscriber.started_after(killed_ns), 60, "a new alert after the failover")
            assert pipeline.pids() == pids, "no service restarted"
            frames_dropped = dropped(ports["ingest"], "vigil_ingest_frames_dropped_total")
            detections_dropped = dropped(ports["detect"], "vigil_detector_frames_dropped_total")
            print(
                f"\nfailover: replica promoted {promoted_s:.1f} s after the kill, every camera's "
                f"detections flowing {resumed_s:.1f} s after; dropped (redis unavailable): "
                f"{frames_dropped:.0f} frames at ingest, {detections_dropped:.0f} at the detector"
            )
            drain(pipeline, [subscriber])
        history = assert_delivered_once(pipeline, [subscriber], before=before)
        with AlertSubscriber([pipeline.endpoint], history=pipeline.client, since_s=3600) as replay:
            replayed = [event.event_id for event in replay.events(timeout_s=0.5)]
        assert sorted(replayed) == sorted(event.event_id for event in history), "--since replays it all"
    finally:
        codes = pipeline.close()
        cluster.close()
    assert set(codes.values()) <= {0}, f"every service obeys SIGTERM: {codes}\n{pipeline.logs()}"
