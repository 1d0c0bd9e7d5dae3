"""``vigil migrate-keys``: carry a deployment's state from the old key layout to the hash-tagged one
(``vigil:{camera}:...``), on the same Redis or into a new Redis Cluster. Run it with every service
stopped, after a drain (docs/scaling.md).

Renamed (they are state a restart must keep): each camera's track id counter (new ids must never
meet old ones), its alerts cursor, and the recorded-event markers (with their TTL), so events
re-derived in the new owner's warm-up are not recorded twice. Copied under their own names when the
target is another server: the alert history, the forwarding position, the camera registry's set and
the snapshots the history points at. Everything else (frames, detections, camera status, leases,
snapshot indexes) the services rebuild; ``delete`` removes those old keys and the renamed ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import redis

from shared import keys
from shared.redis import RedisClient, call

KEPT_NAMES = (keys.ALERTS, keys.ALERTS_FORWARDED, keys.CAMERAS)


def migrate_keys(
    source: RedisClient, target: RedisClient | None = None, *, delete: bool = False
) -> Counter[str]:
    """Migrate ``source``'s old-layout keys (into ``target``, another server, if given); how many keys
    of each kind were renamed, copied, kept (already in the target) or deleted."""
    done: Counter[str] = Counter()
    into = target or source
    for prefix, new_name in keys.LEGACY_STATE.items():
        for old in _legacy(source, prefix):
            value, ttl_ms = call(lambda o=old: (source.get(o), source.pttl(o)))
            if value is None:
                continue
            new = new_name(old[len(prefix):])
            if new_name is keys.track_ids_key:  # a counter: never step back below ids already handed out
                value = max(int(value), int(call(lambda n=new: into.get(n)) or 0))
                call(lambda n=new, v=value: into.set(n, v))
            else:
                call(lambda n=new, v=value, t=ttl_ms: into.set(n, v, nx=True, px=t if t > 0 else None))
            done[f"renamed {prefix}*"] += 1
            if delete:
                call(lambda o=old: source.delete(o))
    if target is not None:
        for name in [*KEPT_NAMES, *_legacy(source, keys.LEGACY_SNAPSHOT)]:
            kind = name if name in KEPT_NAMES else f"{keys.LEGACY_SNAPSHOT}*"
            copied = _copy(source, target, name)
            if copied is not None:
                done[f"{'copied' if copied else 'kept'} {kind}"] += 1
    if delete:
        for prefix in keys.LEGACY_TRANSIENT:
            for old in _legacy(source, prefix):
                done[f"deleted {prefix}*"] += call(lambda o=old: source.delete(o))
    return done


def _legacy(client: RedisClient, prefix: str) -> Iterator[str]:
    """Old-layout names under ``prefix`` (a hash-tagged new name carries a ``{`` and is skipped)."""
    for name in call(lambda: list(client.scan_iter(match=f"{prefix}*", count=1000))):
        text = name.decode() if isinstance(name, bytes) else name
        if "{" not in text:
            yield text


def _copy(source: RedisClient, target: RedisClient, name: str) -> bool | None:
    """``name`` to the other server as it is (DUMP/RESTORE, with its TTL): True if copied, False if
    the target has it already (the target's is kept), None if the source has no such key."""
    dumped, ttl_ms = call(lambda: (source.dump(name), source.pttl(name)))
    if dumped is None:
        return None
    try:
        call(lambda: target.restore(name, max(0, ttl_ms), dumped))
    except redis.ResponseError as error:
        if "BUSYKEY" not in str(error):
            raise
        return False
    return True
