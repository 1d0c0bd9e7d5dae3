"""Vigil on a real Redis Cluster (3 masters, 3 replicas, a password; tests/support/redis_cluster.py).

The key layout keeps a camera's keys in one slot and spreads cameras over the shards; the URL
reaches a cluster through any live seed; streams of many slots are read together. Then the
Redis-touching tests of leases, the registry, track ids, snapshots (MULTI/EXEC), the alert history
(its Lua script), the alerts service and the webhook sink (its dead letters) run again, unchanged,
with their ``redis_client`` on the cluster: a CROSSSLOT anywhere in those code paths fails them.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from alerts.sinks.deadletter import DeadLetters
from shared import keys
from shared.config import RedisConfig
from shared.leases import LeaseManager
from shared.redis import connect, free_port
from shared.registry import CameraStatus, write_status
from shared.streams import CLUSTER_POLL_MS, read_streams
from tests.alerts.sinks.conftest import receiver  # noqa: F401  the webhook tests' fixture
from tests.alerts.sinks.test_webhook import (  # noqa: F401  dead letters + XACK in one MULTI/EXEC
    test_every_event_arrives_once_by_id_signed_through_failures_and_a_timeout,
    test_lag_counts_the_events_not_yet_delivered,
    test_replicas_share_the_sinks_and_take_over_a_stopped_one,
)
from tests.alerts.test_service import (  # noqa: F401  run here again, on the cluster
    test_a_cursor_older_than_the_stream_is_counted_as_trimmed,
    test_snapshot_of_the_frame_with_the_box,
    test_started_with_box_then_ended_on_a_sub_socket,
)
from tests.alerts.test_snapshots import (  # noqa: F401
    test_excess_left_by_a_crash_is_deleted_by_the_next_save,
    test_the_bound_is_per_camera_and_a_re_save_is_no_new_snapshot,
)
from tests.detector.test_track_ids import test_each_owner_reserves_a_block_no_other_owner_gets  # noqa: F401
from tests.shared.test_leases import (  # noqa: F401
    test_a_joining_member_gets_its_share,
    test_even_spread_one_owner_each,
    test_graceful_release_hands_over_at_once,
)
from tests.shared.test_registry_and_metrics import (  # noqa: F401
    test_registry_prunes_vanished_entries,
    test_registry_round_trip,
)
from tests.support.compose_redis import START, USERS_ACL, make_env, password_variable
from tests.support.redis_cluster import PASSWORD, LocalRedisCluster

pytestmark = pytest.mark.slow  # the cluster takes a few seconds to start, once a session
PER_CAMERA = (keys.frames_stream, keys.detections_stream, keys.camera_key, keys.track_ids_key,
              keys.alerts_cursor_key, keys.snapshots_key)  # fmt: skip


@pytest.fixture
def redis_client(redis_cluster: LocalRedisCluster) -> Iterator[RedisCluster]:
    """What the imported tests get instead of a single node: a client of the cluster, emptied."""
    client = connect(RedisConfig(url=redis_cluster.url))
    assert isinstance(client, RedisCluster)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def spread_cameras(client: RedisCluster, count: int) -> list[str]:
    """``count`` camera ids whose keys land on every master in turn."""
    by_node: dict[str, list[str]] = {}
    for n in range(1000):
        camera = f"cam-{n}"
        by_node.setdefault(client.get_node_from_key(keys.frames_stream(camera)).name, []).append(camera)
    columns = list(by_node.values())
    return [columns[i % len(columns)][i // len(columns)] for i in range(count)]


def test_a_cameras_keys_share_its_slot_and_the_history_script_stays_in_one() -> None:
    for camera in ("lobby", "gate-2", "cam.7"):
        slots = {key_slot(name(camera).encode()) for name in PER_CAMERA}
        slots |= {key_slot(keys.lease_key(group, camera).encode()) for group in ("ingest", "detect")}
        slots.add(key_slot(keys.snapshot_key(camera, "event-1").encode()))
        assert len(slots) == 1, f"{camera}: its keys are in slots {slots}"
    assert key_slot(keys.alert_recorded_key("e-1").encode()) == key_slot(keys.ALERTS.encode())


def test_any_live_seed_reaches_the_cluster_with_its_password(redis_cluster: LocalRedisCluster) -> None:
    dead, live = free_port(), next(iter(redis_cluster.nodes))
    client = connect(RedisConfig(url=f"redis+cluster://:{PASSWORD}@127.0.0.1:{dead},127.0.0.1:{live}"))
    assert isinstance(client, RedisCluster) and client.ping()
    assert len({node.name for node in client.get_primaries()}) == 3
    client.close()


def test_streams_of_every_shard_are_read_together(redis_client: RedisCluster) -> None:
    cameras = spread_cameras(redis_client, 6)
    nodes = {redis_client.get_node_from_key(keys.detections_stream(camera)).name for camera in cameras}
    assert len(nodes) == 3, "the cameras' streams are on all three masters"
    cursors = {keys.detections_stream(camera): "0-0" for camera in cameras}
    for stream in cursors:
        redis_client.xadd(stream, {"n": stream})
    read = read_streams(redis_client, cursors, count=10, block_ms=100)
    assert {stream: [f[b"n"].decode() for _id, f in entries] for stream, entries in read} == {
        stream: [stream] for stream in cursors
    }
    caught_up = {stream: entries[-1][0] for stream, entries in read}
    started = time.monotonic()
    assert read_streams(redis_client, caught_up, count=10, block_ms=1000) == []
    waited_s = time.monotonic() - started
    assert waited_s < 1.0, f"an empty read waits one poll ({CLUSTER_POLL_MS} ms), not the whole block"


def test_each_service_user_of_users_acl_works_on_the_cluster(
    redis_cluster: LocalRedisCluster, tmp_path
) -> None:
    """deploy/redis/users.acl, rendered by start.sh, on every node: each user's cluster client reads
    the slot map and does its service's leases, reads and writes; Redis refuses nothing."""
    passwords = make_env(tmp_path / ".env")
    rendered = tmp_path / "users.acl"
    subprocess.run(["sh", str(START), str(USERS_ACL), str(rendered), "true"],
                   env={"PATH": "/usr/bin:/bin", **passwords}, check=True)  # fmt: skip
    users = [line.split(None, 2)[1:] for line in rendered.read_text().splitlines()]
    for node in redis_cluster.nodes.values():
        admin = node.client()
        for name, rules in users:
            if name != "default":
                admin.execute_command("ACL", "SETUSER", name, "reset", *re.findall(r"\([^)]*\)|\S+", rules))
        admin.acl_log_reset()
    seeds = ",".join(f"127.0.0.1:{port}" for port in redis_cluster.nodes)

    def client(user: str) -> RedisCluster:
        return connect(
            RedisConfig(url=f"redis+cluster://{user}:{passwords[password_variable(user)]}@{seeds}")
        )

    cameras = ["a", "b", "c", "d"]
    ingest, detector, alerts = client("ingest"), client("detector"), client("alerts")
    for user, group in ((ingest, "ingest"), (detector, "detect"), (alerts, "alerts")):
        assert LeaseManager(user, group=group, instance="i-1", ttl_s=5).sync(cameras) == frozenset(cameras)
    for camera in cameras:
        ingest.xadd(keys.frames_stream(camera), {"seq": 1}, maxlen=10, approximate=True)
        write_status(
            ingest, CameraStatus(camera=camera, state="streaming", owner="i-1", updated_ns=time.time_ns())
        )
    assert (
        len(read_streams(detector, {keys.frames_stream(c): "0-0" for c in cameras}, count=5, block_ms=10))
        == 4
    )
    pipe = detector.pipeline(transaction=False)
    for camera in cameras:
        pipe.xadd(keys.detections_stream(camera), {"camera": camera})
        pipe.incrby(keys.track_ids_key(camera), 10)
    pipe.execute()
    assert (
        len(read_streams(alerts, {keys.detections_stream(c): "0-0" for c in cameras}, count=5, block_ms=10))
        == 4
    )
    sinks = client("sinks")
    assert LeaseManager(sinks, group="sinks", instance="i-1", ttl_s=5).sync(["hook"]) == {"hook"}
    entry = alerts.xadd(keys.ALERTS, {"event": "{}"})
    sinks.xgroup_create(keys.ALERTS, keys.sink_group("hook"), id="0")
    assert sinks.xreadgroup(keys.sink_group("hook"), "i-1", {keys.ALERTS: ">"}, count=1)
    DeadLetters(sinks, "hook", maxlen=10).add_and_ack(entry, "{}", error="HTTP 400", attempts=1)
    assert sinks.xpending(keys.ALERTS, keys.sink_group("hook"))["pending"] == 0
    recorder = client("recorder")  # its group on the history; a camera's frames and detections in one XREAD
    assert LeaseManager(recorder, group="record", instance="i-1", ttl_s=5).sync(cameras) == frozenset(cameras)
    recorder.xgroup_create(keys.ALERTS, keys.RECORD_GROUP, id="0")
    [[_, [(recorded, _)]]] = recorder.xreadgroup(keys.RECORD_GROUP, "i-1", {keys.ALERTS: ">"}, count=1)
    recorder.xack(keys.ALERTS, keys.RECORD_GROUP, recorded)
    both = {key: "0-0" for c in cameras for key in (keys.frames_stream(c), keys.detections_stream(c))}
    assert len(read_streams(recorder, both, count=5, block_ms=10)) == 8
    assert all(node.client().acl_log() == [] for node in redis_cluster.alive().values())
    for user in (ingest, detector, alerts, sinks, recorder):
        user.close()
