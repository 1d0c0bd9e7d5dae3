"""Snapshots on a real Redis: bounded by count per camera, not only by TTL."""

from __future__ import annotations

import redis

from alerts.snapshots import GONE, SnapshotStore
from shared import keys
from shared.config import AlertsConfig
from shared.schemas import AlertEvent
from tests.detector.conftest import jpeg_frame
from tests.detector.conftest import push as push_frame

T0_NS = 1_800_000_000 * 10**9


def event(camera: str, seq: int) -> AlertEvent:
    """A ``started`` event on frame ``seq``, ``seq`` seconds after T0."""
    return AlertEvent(
        event_id=f"{camera}-{seq:04d}", kind="started", rule="gun", severity="critical", camera=camera,
        label="pistol", score=0.9, box=(10.0, 10.0, 50.0, 60.0), box_norm=(0.03, 0.04, 0.16, 0.25),
        frame_width=320, frame_height=240, track_id=1, first_seen_ns=T0_NS, ts_ns=T0_NS + seq * 10**9,
        seq=seq,
    )  # fmt: skip


def frames(client: redis.Redis, camera: str, count: int) -> None:
    for seq in range(count):
        push_frame(client, jpeg_frame(camera, seq, ts_ns=T0_NS + seq * 10**9))


def test_the_n_plus_first_snapshot_evicts_the_first(redis_client: redis.Redis) -> None:
    frames(redis_client, "gate", 5)
    store = SnapshotStore(redis_client, ttl_s=3600, max_per_camera=3)
    saved = [store.save(event("gate", seq)) for seq in range(3)]
    assert saved == [keys.snapshot_key("gate", f"gate-{seq:04d}") for seq in range(3)]
    assert all(redis_client.exists(key) for key in saved)

    fourth = store.save(event("gate", 3))
    assert not redis_client.exists(saved[0]), "the oldest snapshot is deleted"
    assert all(redis_client.exists(key) for key in [*saved[1:], fourth])
    index = [member.decode() for member in redis_client.zrange(keys.snapshots_key("gate"), 0, -1)]
    assert index == [*saved[1:], fourth]
    assert 0 < redis_client.ttl(keys.snapshots_key("gate")) <= 3600, "the index expires with its snapshots"
    assert all(0 < redis_client.ttl(key) <= 3600 for key in index)


def test_the_bound_is_per_camera_and_a_re_save_is_no_new_snapshot(redis_client: redis.Redis) -> None:
    frames(redis_client, "gate", 3)
    frames(redis_client, "yard", 3)
    store = SnapshotStore(redis_client, ttl_s=3600, max_per_camera=2)
    for seq in range(2):
        store.save(event("gate", seq))
        store.save(event("yard", seq))
    store.save(event("gate", 1))  # the same event saved again (a crash before it was recorded)
    assert redis_client.zcard(keys.snapshots_key("gate")) == 2
    assert redis_client.exists(keys.snapshot_key("gate", "gate-0000")), "a re-save evicts nothing"
    store.save(event("gate", 2))
    assert not redis_client.exists(keys.snapshot_key("gate", "gate-0000"))
    assert redis_client.exists(keys.snapshot_key("yard", "yard-0000")), "another camera's snapshots stay"
    assert redis_client.zcard(keys.snapshots_key("yard")) == 2


def test_excess_left_by_a_crash_is_deleted_by_the_next_save(redis_client: redis.Redis) -> None:
    """A crash between storing and trimming leaves old keys in the index: the next save finds them."""
    frames(redis_client, "gate", 1)
    for seq in range(5):  # what an interrupted run left: 5 indexed snapshots, older than any new one
        key = keys.snapshot_key("gate", f"old-{seq}")
        redis_client.set(key, b"jpeg", ex=3600)
        redis_client.zadd(keys.snapshots_key("gate"), {key: seq})
    SnapshotStore(redis_client, ttl_s=3600, max_per_camera=2).save(event("gate", 0))
    left = [member.decode() for member in redis_client.zrange(keys.snapshots_key("gate"), 0, -1)]
    assert left == [keys.snapshot_key("gate", "old-4"), keys.snapshot_key("gate", "gate-0000")]
    assert not any(redis_client.exists(keys.snapshot_key("gate", f"old-{seq}")) for seq in range(4))


def test_from_config_and_a_frame_already_trimmed(redis_client: redis.Redis) -> None:
    config = AlertsConfig(metrics_port=None)
    assert config.snapshot_max_per_camera == 200
    store = SnapshotStore.from_config(redis_client, config)
    assert store.save(event("gate", 7)) == GONE
    assert not redis_client.exists(keys.snapshots_key("gate"))
