"""Kill -9 the alerts service mid-stream and start it again: every expected event id is delivered
once, none lost, none doubled."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml

from alerts.rules import RuleEngine
from alerts.subscriber import AlertSubscriber
from shared.config import RedisConfig
from shared.redis import connect
from tests.alerts.conftest import RULE, endpoint, message, push

pytestmark = pytest.mark.slow
FRAME_S = 0.1


def script(start_ns: int) -> list:
    """Two cameras, 70 frames each at 10 fps; tracks come and go (some never persist)."""
    messages = []
    for seq in range(70):
        for camera, offset in (("cam-a", 0), ("cam-b", 7)):
            phase = (seq + offset) % 25
            objects = []
            if phase < 12:
                objects.append(((seq + offset) // 25 * 10 + 1, 0.9))  # a track for 1.2 s, then gone
            if phase in (3, 4):
                objects.append((99, 0.9))  # too short to persist
            messages.append(message(camera, seq, *objects, ts_ns=start_ns + int(seq * FRAME_S * 1e9)))
    return messages


def expected_ids(messages: list) -> set[str]:
    engine = RuleEngine([RULE], {})
    events = [event for m in messages for event in engine.process(m)]
    events += engine.sweep(messages[-1].ts_ns + 3600 * 10**9)
    return {event.event_id for event in events}


def start(config: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "vigil", "alerts", "-c", str(config)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_kill_and_restart_mid_stream(redis_client: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    bind, connect_to = endpoint()
    config = tmp_path / "vigil.yaml"
    config.write_text(yaml.safe_dump({
        "redis": {"url": redis_url},
        "alerts": {"publish_endpoint": bind, "metrics_port": None, "lease_ttl_s": 1.0, "snapshots": "off",
                   "rules": [RULE.model_dump()]},
        "cameras": [{"id": "cam-a", "url": "rtsp://x/a"}, {"id": "cam-b", "url": "rtsp://x/b"}],
        # the rule ends an alert after 1 s: shorter than motion gating's 2 s interval, so gating is off
        "detector": {"motion": {"enabled": False}},
    }))  # fmt: skip
    messages = script(time.time_ns() + int(2e9))
    expected = expected_ids(messages)
    assert len(expected) >= 8, "the script raises several started/ended pairs"
    service = start(config)
    subscriber = AlertSubscriber([connect_to], history=connect(RedisConfig(url=redis_url)), since_s=60)
    delivered: list[str] = []
    try:
        time.sleep(2.0)
        for index, detections in enumerate(messages):
            time.sleep(max(0.0, (detections.ts_ns - time.time_ns()) / 1e9))
            push(redis_client, detections)
            if index == len(messages) // 2:
                service.kill()  # kill -9, mid-stream
                service.wait()
                service = start(config)
            delivered += [e.event_id for e in subscriber.events(timeout_s=0)]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and set(delivered) != expected:
            delivered += [e.event_id for e in subscriber.events(timeout_s=0.5)]
    finally:
        service.kill()
        service.wait()
        subscriber.close()
    assert sorted(delivered) == sorted(expected), "none lost, none doubled"
