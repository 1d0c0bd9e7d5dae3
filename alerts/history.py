"""The alert history: the bounded Redis stream ``vigil:alerts``, the source of truth that live
ZeroMQ delivery, late subscribers and replays all read from.

An event is recorded at most once: a Lua script sets the event's recorded marker (NX, with a TTL)
and appends the event in one atomic step. The markers carry the history's name as their hash tag,
so on a Redis Cluster the script's two keys share one slot; the history is one stream for every
camera, in the order events were recorded (alerts are rare next to frames and detections: one slot
carries them; see docs/scaling.md). Event ids are deterministic, so re-evaluating the
same detections after a crash or a hand-over records nothing new.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis

from shared import keys
from shared.errors import SchemaError
from shared.redis import call
from shared.schemas import AlertEvent

_RECORD = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'v', ARGV[3], 'event', ARGV[4])
end
return false
"""
DEDUP_TTL_S = 7 * 24 * 3600


class AlertHistory:
    def __init__(self, client: redis.Redis, *, maxlen: int) -> None:
        self._client = client
        self._maxlen = maxlen
        self._record = client.register_script(_RECORD)

    def record(self, event: AlertEvent) -> bytes | None:
        """Append ``event``; its entry id, or None when it had been recorded already."""
        entry_id = call(
            lambda: self._record(
                keys=[keys.alert_recorded_key(event.event_id), keys.ALERTS],
                args=[DEDUP_TTL_S, self._maxlen, AlertEvent.VERSION, event.to_json()],
            )
        )
        return entry_id or None

    def after(self, entry_id: bytes | str, *, count: int = 100) -> list[tuple[bytes, dict]]:
        """Raw entries after ``entry_id`` (exclusive), oldest first."""
        return call(lambda: self._client.xrange(keys.ALERTS, min=f"({as_text(entry_id)}", count=count))


def history_since(client: redis.Redis, since_ms: int) -> Iterator[AlertEvent]:
    """Recorded events from ``since_ms`` (Unix ms) on, oldest first; malformed entries skipped."""
    cursor = f"{since_ms}-0"
    while True:
        entries = call(lambda c=cursor: client.xrange(keys.ALERTS, min=c, count=500))
        for _entry_id, fields in entries:
            try:
                yield AlertEvent.decode(fields)
            except SchemaError:
                continue
        if len(entries) < 500:
            return
        cursor = f"({as_text(entries[-1][0])}"


def as_text(value: bytes | str) -> str:
    """A stream entry id (or any reply) as text: redis-py answers bytes."""
    return value.decode() if isinstance(value, bytes) else value


def entry_ms(entry_id: bytes | str) -> int:
    """The Unix ms of a stream entry id (when it was added)."""
    return int(as_text(entry_id).split("-", 1)[0])
