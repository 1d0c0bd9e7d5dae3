"""Ingest under faults: Redis restarts, streams nobody reads, unreachable cameras with passwords."""

from __future__ import annotations

import logging
import time

import pytest
import redis
from prometheus_client import generate_latest

from ingest.service import IngestService
from shared import keys
from shared.config import CameraConfig, RedisConfig
from shared.logs import register_url_secrets
from shared.redis import EmbeddedRedis, connect
from shared.registry import read_statuses
from tests.ingest.conftest import VTEST, frames, ingest_config, metric
from tests.support.services import running, wait_for


def test_redis_restart_is_survived_and_drops_are_counted(private_redis: EmbeddedRedis) -> None:
    client = connect(RedisConfig(url=private_redis.url, socket_timeout_s=1, connect_timeout_s=0.5))
    camera = CameraConfig(id="cam", url=str(VTEST), fps=5, max_side=160, loop=True)  # real-time pace
    service = IngestService(ingest_config(lease_ttl_s=1.0), (camera,), client=client)
    with running(service):
        assert wait_for(lambda: len(frames(client, "cam")) >= 5, 10)
        seq_before = frames(client, "cam")[-1].seq
        private_redis.stop(kill=True)
        dropped = lambda: metric(service.metrics, "vigil_ingest_frames_dropped_total", camera="cam",  # noqa: E731
                                 reason="redis_unavailable")  # fmt: skip
        assert wait_for(lambda: dropped() >= 5, 10), "frames sampled while Redis is down are counted"
        assert service.workers["cam"].is_alive()
        private_redis.start()
        assert wait_for(lambda: client.xlen(keys.frames_stream("cam")) >= 5, 10), "frames flow again"
        after = frames(client, "cam")
        assert after[0].seq > seq_before, "seq keeps rising across the restart"
        assert wait_for(lambda: service.ready, 5)
        assert wait_for(lambda: client.get(keys.lease_key("ingest", "cam")) == b"test-worker", 5)


def test_stream_without_consumer_stays_bounded(redis_client: redis.Redis) -> None:
    maxlen = 50
    camera = CameraConfig(id="cam", url=str(VTEST), fps=10, max_side=160, realtime=False, loop=True)
    service = IngestService(
        ingest_config(stream_maxlen=maxlen), (camera,), client=redis_client, burst=True, max_frames=1000
    )
    service.run()
    assert metric(service.metrics, "vigil_ingest_frames_published_total", camera="cam") == 1000
    node_entries = int(redis_client.config_get("stream-node-max-entries")["stream-node-max-entries"])
    length = redis_client.xlen(keys.frames_stream("cam"))
    # MAXLEN ~ trims whole radix-tree nodes: the length stays within maxlen + one node
    assert maxlen <= length <= maxlen + node_entries
    assert frames(redis_client, "cam")[-1].seq == 999, "the newest frames are the ones kept"


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://admin:Sup3rS3cret@127.0.0.1:9/stream",  # closed port: refused at once
        "http://admin:Sup3rS3cret@127.0.0.1:9/video.mjpg",
        "rtsp://admin:Sup3rS3cret@10.255.255.1:554/stream",  # unroutable: the open timeout fires
    ],
)
def test_unreachable_camera_backs_off_and_never_leaks_its_password(
    redis_client: redis.Redis, url: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    register_url_secrets(url)
    camera = CameraConfig(id="door", url=url, fps=5)
    service = IngestService(
        ingest_config(open_timeout_s=1.0, reconnect_base_s=0.1, reconnect_cap_s=0.4),
        (camera,),
        client=redis_client,
    )
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG), running(service):
        assert wait_for(
            lambda: metric(service.metrics, "vigil_ingest_reconnects_total", camera="door") >= 3, 15
        )
        elapsed = time.monotonic() - started
        statuses = read_statuses(redis_client)
    assert elapsed < 10, "open timeouts are honoured"
    assert metric(service.metrics, "vigil_ingest_camera_up", camera="door") == 0
    [status] = statuses
    assert status.state in ("backoff", "connecting")
    assert "cannot connect" in status.last_error
    captured = capfd.readouterr()
    everything = " ".join(
        [
            caplog.text,
            captured.out,
            captured.err,
            generate_latest(service.metrics.registry).decode(),
            repr(status),
        ]
        + [repr(v) for v in redis_client.hgetall(keys.camera_key("door")).values()]
    )
    assert "Sup3rS3cret" not in everything
    assert "camera door" in caplog.text
