"""Camera ownership through Redis leases: one owner per camera, TTL, renewal, even spread.

Each instance of a group (``ingest`` or ``detect``) calls :meth:`LeaseManager.sync` every
``ttl/3`` seconds. A sync

1. refreshes the instance in the group's member set and reads the live members (expiry scored
   with the *server's* clock, so host clocks never matter);
2. computes this instance's quota: ``len(cameras) // n`` plus one for the first ``len % n``
   members in sorted order, so shares differ by at most one;
3. renews the leases it holds (re-taking any that vanished, e.g. after a Redis restart),
   releases its least preferred ones above quota, and takes free ones below quota.

Preference is rendezvous hashing of (instance, camera): different instances reach for
different cameras first, and a camera stays with its owner while quotas do not change.
A crashed instance stops renewing; its member entry and leases expire after ``ttl`` and the
survivors' next sync (within ``ttl/3``) takes the cameras over.

Each script touches one key (the group's member set, or one camera's lease), so on a Redis Cluster
every call stays in one slot. On a single node the leases of a round go out as one pipeline; on a
cluster (where redis-py pipelines no scripts) as one call each.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import redis

from shared import keys
from shared.redis import call, is_cluster

log = logging.getLogger(__name__)

_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 4)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
_HOLD = """
local owner = redis.call('GET', KEYS[1])
if owner == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not owner then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def fair_quota(total: int, members: Sequence[str], me: str) -> int:
    """This member's share of ``total`` items: shares over sorted members differ by at most one."""
    ordered = sorted(members)
    rank = ordered.index(me)
    base, extra = divmod(total, len(ordered))
    return base + (1 if rank < extra else 0)


def preference(instance: str, camera: str) -> bytes:
    """Rendezvous hash: lower sorts first in this instance's order of cameras to take."""
    return hashlib.blake2b(f"{instance}\0{camera}".encode(), digest_size=8).digest()


class LeaseManager:
    """Holds this instance's share of the cameras of one group. Not thread-safe: one caller."""

    def __init__(self, client: redis.Redis, *, group: str, instance: str, ttl_s: float) -> None:
        self.group = group
        self.instance = instance
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._client = client
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)
        self.owned: frozenset[str] = frozenset()

    @property
    def renew_interval_s(self) -> float:
        return self.ttl_ms / 3000

    def members(self) -> list[str]:
        """Refresh this instance's membership and return the live members of the group."""
        raw = call(
            lambda: self._heartbeat(keys=[keys.members_key(self.group)], args=[self.instance, self.ttl_ms])
        )
        members = [m.decode() if isinstance(m, bytes) else str(m) for m in raw]
        return members if self.instance in members else [*members, self.instance]

    def sync(self, cameras: Sequence[str]) -> frozenset[str]:
        """One renewal round; returns the cameras this instance owns now.

        Raises :class:`StoreUnavailable` when Redis is down (ownership is then unchanged locally).
        """
        quota = fair_quota(len(cameras), self.members(), self.instance)
        order = sorted(cameras, key=lambda cam: preference(self.instance, cam))
        held = [cam for cam in order if cam in self.owned]
        keep, extra = held[:quota], held[quota:]
        owned = set(self._hold_many(keep))
        for camera in extra:
            self._release_one(camera)
        for camera in order:
            if len(owned) >= quota:
                break
            if camera not in owned and camera not in extra and self._hold_many([camera]):
                owned.add(camera)
        if owned != self.owned:
            log.info(
                "%s %s owns %d/%d cameras: %s",
                self.group,
                self.instance,
                len(owned),
                len(cameras),
                sorted(owned),
            )
        self.owned = frozenset(owned)
        return self.owned

    def release_all(self) -> None:
        """Give every lease and the membership back (graceful stop): others take over at once."""
        for camera in self.owned:
            self._release_one(camera)
        call(lambda: self._client.zrem(keys.members_key(self.group), self.instance))
        self.owned = frozenset()

    def _hold_many(self, cameras: Sequence[str]) -> list[str]:
        if not cameras:
            return []
        if is_cluster(self._client):  # redis-py runs no scripts in a cluster pipeline: one call each
            results = [call(lambda c=camera: self._hold_one(c)) for camera in cameras]
        else:

            def run() -> list[int]:
                pipe = self._client.pipeline(transaction=False)
                for camera in cameras:
                    self._hold_one(camera, client=pipe)
                return pipe.execute()

            results = call(run)
        return [camera for camera, ok in zip(cameras, results, strict=True) if ok]

    def _hold_one(self, camera: str, client: redis.client.Pipeline | None = None) -> int:
        lease = keys.lease_key(self.group, camera)
        return self._hold(keys=[lease], args=[self.instance, self.ttl_ms], client=client)

    def _release_one(self, camera: str) -> None:
        call(lambda: self._release(keys=[keys.lease_key(self.group, camera)], args=[self.instance]))
