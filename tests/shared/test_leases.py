import time
from collections import Counter

import pytest
import redis

from shared.config import RedisConfig
from shared.errors import StoreUnavailable
from shared.leases import LeaseManager, fair_quota
from shared.redis import EmbeddedRedis, connect

CAMERAS = ["cam-a", "cam-b", "cam-c", "cam-d", "cam-e"]


def managers(client: redis.Redis, n: int, ttl_s: float = 2.0) -> list[LeaseManager]:
    return [LeaseManager(client, group="ingest", instance=f"w{i}", ttl_s=ttl_s) for i in range(n)]


def settle(group: list[LeaseManager], cameras: list[str], rounds: int = 3) -> list[frozenset[str]]:
    for _ in range(rounds):
        for manager in group:
            manager.sync(cameras)
    return [manager.owned for manager in group]


def assert_partition(owned: list[frozenset[str]], cameras: list[str]) -> None:
    counts = Counter(cam for share in owned for cam in share)
    assert set(counts) == set(cameras), "every camera has an owner"
    assert max(counts.values()) == 1, "no camera has two owners"
    sizes = [len(share) for share in owned]
    assert max(sizes) - min(sizes) <= 1, f"shares differ by more than one: {sizes}"


def test_fair_quota_sums_to_total() -> None:
    members = ["b", "a", "c"]
    assert [fair_quota(5, members, m) for m in ("a", "b", "c")] == [2, 2, 1]
    assert sum(fair_quota(7, members, m) for m in members) == 7


@pytest.mark.parametrize("workers", [1, 2, 3, 4])
def test_even_spread_one_owner_each(redis_client: redis.Redis, workers: int) -> None:
    owned = settle(managers(redis_client, workers), CAMERAS)
    assert_partition(owned, CAMERAS)


def test_crashed_owner_expires_and_survivors_take_over(redis_client: redis.Redis) -> None:
    a, b = managers(redis_client, 2, ttl_s=1.0)
    settle([a, b], CAMERAS[:4])
    assert len(a.owned) == len(b.owned) == 2
    # b "crashes": it stops renewing. a keeps syncing; within the TTL it holds everything.
    deadline = time.monotonic() + 1.0 + 0.5
    while time.monotonic() < deadline and len(a.owned) < 4:
        a.sync(CAMERAS[:4])
        time.sleep(0.1)
    assert a.owned == frozenset(CAMERAS[:4])


def test_graceful_release_hands_over_at_once(redis_client: redis.Redis) -> None:
    a, b = managers(redis_client, 2, ttl_s=30.0)
    settle([a, b], CAMERAS)
    b.release_all()
    assert b.owned == frozenset()
    assert a.sync(CAMERAS) == frozenset(CAMERAS)


def test_a_joining_member_gets_its_share(redis_client: redis.Redis) -> None:
    a, b, c = managers(redis_client, 3)
    settle([a], CAMERAS)
    assert a.owned == frozenset(CAMERAS)
    assert_partition(settle([a, b, c], CAMERAS), CAMERAS)


def test_leases_are_retaken_after_a_redis_restart(private_redis: EmbeddedRedis) -> None:
    client = connect(RedisConfig(url=private_redis.url, socket_timeout_s=1, connect_timeout_s=1))
    a, b = managers(client, 2)
    before = settle([a, b], CAMERAS)
    private_redis.stop(kill=True)
    with pytest.raises(StoreUnavailable):
        a.sync(CAMERAS)
    assert a.owned == before[0], "ownership is unchanged while Redis is away"
    private_redis.start()
    after = settle([a, b], CAMERAS, rounds=2)
    assert after == before, "each keeps its cameras: the empty Redis is re-filled with the same owners"
