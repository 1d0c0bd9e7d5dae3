"""``vigil migrate-keys``: a deployment of the old key layout keeps its track ids, alerts cursors,
recorded-event markers and history, renamed in place or copied into a new Redis Cluster."""

from __future__ import annotations

from pathlib import Path

import redis
import yaml
from redis.cluster import RedisCluster

from shared import keys
from shared.config import RedisConfig
from shared.redis import connect
from tests.support.redis_cluster import LocalRedisCluster
from vigil.cli import main
from vigil.migrate import migrate_keys


def old_deployment(client: redis.Redis) -> None:
    """What the layout before Redis Cluster support left in Redis (its literal names)."""
    client.set("vigil:track_ids:gate", 30_000)
    client.set("vigil:alerts:cursor:gate", "1700000000000-3")
    client.set("vigil:alert:recorded:ev-1", "1", ex=3600)
    client.set("vigil:snapshot:ev-1", b"jpeg", ex=3600)
    client.xadd(keys.ALERTS, {"v": "1", "event": "{}"})
    client.set(keys.ALERTS_FORWARDED, "1-0")
    client.xadd("vigil:frames:gate", {"seq": 1})
    client.xadd("vigil:detections", {"camera": "gate"})
    client.hset("vigil:camera:gate", "state", "streaming")
    client.set("vigil:lease:detect:gate", "det-1", px=5000)


def test_renamed_in_place_and_counters_never_step_back(redis_client: redis.Redis) -> None:
    old_deployment(redis_client)
    redis_client.set(keys.track_ids_key("gate"), 10_000)  # a new-layout detector ran before the migration
    done = migrate_keys(redis_client)
    assert done["renamed vigil:track_ids:*"] == done["renamed vigil:alerts:cursor:*"] == 1
    assert int(redis_client.get(keys.track_ids_key("gate"))) == 30_000, "the higher counter wins"
    assert redis_client.get(keys.alerts_cursor_key("gate")) == b"1700000000000-3"
    assert 0 < redis_client.ttl(keys.alert_recorded_key("ev-1")) <= 3600, "the marker keeps its TTL"
    assert redis_client.exists("vigil:track_ids:gate"), "nothing deleted without --delete"
    assert migrate_keys(redis_client)["renamed vigil:alerts:cursor:*"] == 1, "running it again is harmless"


def test_copied_into_a_cluster_then_the_old_keys_deleted(
    redis_client: redis.Redis, redis_url: str, redis_cluster: LocalRedisCluster, tmp_path: Path, capsys
) -> None:
    old_deployment(redis_client)
    cluster = connect(RedisConfig(url=redis_cluster.url))
    assert isinstance(cluster, RedisCluster)
    cluster.flushdb()
    config = tmp_path / "vigil.yaml"
    config.write_text(yaml.safe_dump({"redis": {"url": redis_url}}))
    assert main(["migrate-keys", "-c", str(config), "--to", redis_cluster.url, "--delete"]) == 0
    assert "copied vigil:alerts" in capsys.readouterr().out
    assert int(cluster.get(keys.track_ids_key("gate"))) == 30_000
    assert cluster.exists(keys.alert_recorded_key("ev-1"), keys.alerts_cursor_key("gate")) == 2
    assert cluster.xlen(keys.ALERTS) == 1 and cluster.get(keys.ALERTS_FORWARDED) == b"1-0"
    assert cluster.get("vigil:snapshot:ev-1") == b"jpeg", "the history's snapshot references still resolve"
    left = sorted(name.decode() for name in redis_client.keys("vigil:*"))
    assert left == [keys.ALERTS, keys.ALERTS_FORWARDED, "vigil:snapshot:ev-1"], "the rest deleted"
    cluster.flushdb()
    cluster.close()
