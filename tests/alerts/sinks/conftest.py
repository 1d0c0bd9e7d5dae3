"""Sink test parts: a real Mosquitto broker on a loopback port, a real HTTP receiver that can be
told to fail, events recorded in the real history."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from alerts.history import AlertHistory
from shared.schemas import AlertEvent
from tests.support.mosquitto import MOSQUITTO, Mosquitto
from tests.support.webhook_receiver import Receiver, Script

SECRET = "whsec-0123456789-do-not-log"


def event(
    n: int, *, camera: str = "cam1", kind: str = "started", rule: str = "gun", snapshot: str | None = None
) -> AlertEvent:
    first_seen_ns = 1_700_000_000_000_000_000 + n
    return AlertEvent(
        event_id=f"{camera}-{rule}-{n:04d}-{kind}",
        kind=kind,  # type: ignore[arg-type]
        rule=rule,
        severity="critical",
        camera=camera,
        label="pistol",
        score=0.9,
        box=(10.0, 20.0, 50.0, 80.0),
        box_norm=(0.1, 0.1, 0.2, 0.3),
        frame_width=640,
        frame_height=480,
        track_id=n,
        first_seen_ns=first_seen_ns,
        ts_ns=time.time_ns(),
        seq=n,
        snapshot=snapshot,
    )


def record(client: redis.Redis, *events: AlertEvent) -> None:
    history = AlertHistory(client, maxlen=10_000)
    for item in events:
        assert history.record(item) is not None


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if not Path(MOSQUITTO).exists():
        pytest.skip("no mosquitto: apt-get install mosquitto (tools/system-deps.sh)")
    server = Mosquitto(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(Script())
    yield server
    server.close()
