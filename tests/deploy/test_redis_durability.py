"""The alert history survives a Redis restart: deploy/redis/redis.conf's append-only file, for real.

Redis runs as docker-compose.yml runs it (``deploy/redis/start.sh``, ``redis.conf``, the users of
``users.acl``) on a data folder of the test's own. The alerts user records events with
``AlertHistory`` and saves its cursors; Redis is stopped with SHUTDOWN, then killed with ``kill -9``
(after an AOF rewrite and the one-second fsync interval), and started again on the same folder each
time: the history replays with the same event ids, the cursors are where they were, and a recorded
event is still refused as a duplicate. The same run without the AOF loses everything.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from alerts.events import alert_event
from alerts.history import AlertHistory, history_since
from shared import keys
from shared.schemas import AlertEvent, Detection
from tests.alerts.conftest import RULE
from tests.support.compose_redis import ComposeRedis, make_env
from tests.support.services import wait_for

FSYNC_INTERVAL_S = 1.0
"""``appendfsync everysec``."""


@pytest.fixture(scope="module")
def passwords(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_env(tmp_path_factory.mktemp("env") / ".env")


def events(camera: str, tracks: range) -> list[AlertEvent]:
    now_ns = time.time_ns()
    return [
        alert_event(
            "started", rule=RULE, camera=camera, frame_size=(640, 480), first_seq=10 * track,
            first_seen_ns=now_ns, ts_ns=now_ns + track, seq=10 * track,
            detection=Detection(label="pistol", class_id=0, score=0.9, box=(1.0, 2.0, 30.0, 40.0),
                                track_id=track),
        )
        for track in tracks
    ]  # fmt: skip


def record(client: redis.Redis, batch: list[AlertEvent]) -> None:
    """What the alerts service writes: each event once, then the camera's cursor."""
    history = AlertHistory(client, maxlen=100_000)
    for event in batch:
        assert history.record(event) is not None
    client.set(keys.alerts_cursor_key(batch[-1].camera), f"{batch[-1].ts_ns // 1_000_000}-0")
    client.set(keys.ALERTS_FORWARDED, "1-0")


def replayed_ids(client: redis.Redis) -> list[str]:
    return [event.event_id for event in history_since(client, 0)]


def test_history_and_cursors_survive_shutdown_and_kill(tmp_path: Path, passwords: dict[str, str]) -> None:
    server = ComposeRedis(tmp_path / "data", passwords).start()
    try:
        first = events("lobby", range(1, 21))
        record(server.client("alerts"), first)
        server.shutdown()

        server.start()
        alerts = server.client("alerts")
        assert replayed_ids(alerts) == [event.event_id for event in first]
        cursor = alerts.get(keys.alerts_cursor_key("lobby"))
        assert cursor == f"{first[-1].ts_ns // 1_000_000}-0".encode()
        assert AlertHistory(alerts, maxlen=100_000).record(first[0]) is None, "still recorded once only"

        # a rewrite (what Redis does as the file grows), more events after it, one fsync interval,
        # then kill -9: no SHUTDOWN, no chance to write anything more
        admin = server.client("default")
        admin.bgrewriteaof()
        assert wait_for(lambda: admin.info("persistence")["aof_rewrite_in_progress"] == 0, 30)
        second = events("yard", range(1, 11))
        record(alerts, second)
        time.sleep(FSYNC_INTERVAL_S * 2.5)
        server.kill()

        server.start()
        alerts = server.client("alerts")
        assert replayed_ids(alerts) == [event.event_id for event in first + second]
        assert alerts.get(keys.alerts_cursor_key("lobby")) == cursor
        assert alerts.get(keys.alerts_cursor_key("yard")) == f"{second[-1].ts_ns // 1_000_000}-0".encode()
        assert alerts.get(keys.ALERTS_FORWARDED) == b"1-0"
        assert (tmp_path / "data" / "appendonlydir").is_dir(), "the AOF lives in the data folder (/data)"
    finally:
        server.close()


def test_without_the_append_only_file_the_history_is_lost(tmp_path: Path, passwords: dict[str, str]) -> None:
    """The control: the old compose settings (no persistence) lose it all, so the test above means it."""
    server = ComposeRedis(tmp_path / "data", passwords, extra_args=("--appendonly", "no")).start()
    try:
        record(server.client("alerts"), events("lobby", range(1, 6)))
        time.sleep(FSYNC_INTERVAL_S * 1.5)
        server.kill()
        server.start()
        assert replayed_ids(server.client("alerts")) == []
    finally:
        server.close()

