"""Sink test parts: a real Mosquitto broker on a loopback port, a real HTTP receiver that can be
told to fail, events recorded in the real history."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from alerts.history import AlertHistory
from shared.schemas import AlertEvent
from tests.support.messages import pistol_event
from tests.support.mosquitto import MOSQUITTO, Mosquitto
from tests.support.webhook_receiver import Receiver, Script

SECRET = "whsec-0123456789-do-not-log"


def event(
    n: int, *, camera: str = "cam1", kind: str = "started", rule: str = "gun", snapshot: str | None = None
) -> AlertEvent:
    return pistol_event(
        n,
        event_id=f"{camera}-{rule}-{n:04d}-{kind}",
        first_seen_ns=1_700_000_000_000_000_000 + n,
        camera=camera,
        kind=kind,
        rule=rule,
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
