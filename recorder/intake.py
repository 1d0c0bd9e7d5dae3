"""EventIntake: ``vigil:alerts`` → the event store, through the ``record`` consumer group.

Every recorder replica reads the group (each entry goes to one of them), writes the event into
the store (``started`` makes the row, ``ended`` closes it) and acknowledges the entry only once the
store has it: at least once, and the store's deterministic keys make a second time harmless. A
replica starts with its own pending entries (read, not yet stored: the store was down), and now and
then claims entries left pending by a replica that died (XAUTOCLAIM). Which replica cuts a clip is
not decided here: the camera's owner finds the event among the store's pending clips.

A group made for the first time starts ``START_LOOKBACK_MS`` back, so events recorded just before
the first recorder started still get a row (their clips are cut from what the frames stream holds).
"""

from __future__ import annotations

import logging
import time

import redis

from recorder.metrics import RecordMetrics
from shared import keys
from shared.errors import SchemaError
from shared.eventstore import EventStore
from shared.logs import LIMITED_INTERVAL_S, log_limited
from shared.redis import RedisClient, call
from shared.schemas import AlertEvent

log = logging.getLogger(__name__)
READ_COUNT = 100
START_LOOKBACK_MS = 600_000
RECLAIM_INTERVAL_S = 30.0
RECLAIM_IDLE_MS = 60_000


def ensure_group(client: RedisClient) -> None:
    """Create the ``record`` group if missing (``START_LOOKBACK_MS`` back)."""
    start = f"{max(0, int(time.time() * 1000) - START_LOOKBACK_MS)}-0"
    try:
        call(lambda: client.xgroup_create(keys.ALERTS, keys.RECORD_GROUP, id=start, mkstream=True))
    except redis.ResponseError as error:
        if "BUSYGROUP" not in str(error):
            raise


class EventIntake:
    def __init__(
        self, client: RedisClient, store: EventStore, *, consumer: str, metrics: RecordMetrics
    ) -> None:
        self._client = client
        self._store = store
        self._consumer = consumer
        self._metrics = metrics
        self._group_ready = False
        self._own_pending = True
        """Read this consumer's own pending entries first (``0``), then new ones (``>``)."""
        self._next_reclaim = time.monotonic() + RECLAIM_INTERVAL_S
        self.caught_up = False
        """The last read found nothing new (burst mode's test)."""
        self.synced = False
        """The group has been read to its end once: the store knows the ends of the events recorded
        so far (clips are cut only from then on, or a re-cut would not know where its clip ends)."""

    def step(self, *, block_ms: int) -> int:
        """Read, store and acknowledge one batch; how many entries it held. Raises StoreUnavailable
        and EventStoreUnavailable (the entries stay pending and are read again)."""
        if not self._group_ready:
            ensure_group(self._client)
            self._group_ready = True
        try:
            entries = self._next_batch(block_ms)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self._group_ready, self._own_pending = False, True  # Redis lost its data: start again
            return 0
        for entry_id, fields in entries:
            self._store_event(entry_id, fields)
            call(lambda e=entry_id: self._client.xack(keys.ALERTS, keys.RECORD_GROUP, e))
        return len(entries)

    def _next_batch(self, block_ms: int) -> list[tuple[bytes, dict]]:
        if time.monotonic() >= self._next_reclaim:
            self._next_reclaim = time.monotonic() + RECLAIM_INTERVAL_S
            reply = call(
                lambda: self._client.xautoclaim(
                    keys.ALERTS,
                    keys.RECORD_GROUP,
                    self._consumer,
                    RECLAIM_IDLE_MS,
                    start_id="0-0",
                    count=READ_COUNT,
                )
            )
            claimed = [(entry_id, fields) for entry_id, fields in reply[1] if fields is not None]
            if claimed:
                return claimed
        reading_new = not self._own_pending
        start = ">" if reading_new else "0"
        block = max(1, block_ms) if reading_new else None
        replies = call(
            lambda: self._client.xreadgroup(
                keys.RECORD_GROUP, self._consumer, {keys.ALERTS: start}, count=READ_COUNT, block=block
            )
        )
        entries = replies[0][1] if replies else []
        if not entries:
            self._own_pending = False
        self.caught_up = reading_new and not entries
        self.synced = self.synced or self.caught_up
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    def _store_event(self, entry_id: bytes, fields: dict) -> None:
        try:
            event = AlertEvent.decode(fields)
        except SchemaError as error:
            self._metrics.malformed.labels(error.reason).inc()
            log_limited(log, f"malformed:{error.reason}", LIMITED_INTERVAL_S,
                        "alert history entry %s skipped: %s", entry_id, error)  # fmt: skip
            return
        if event.kind == "started":
            added = self._store.record_started(event)
            self._metrics.events.labels("started" if added else "duplicate").inc()
            return
        if self._store.record_ended(event) is None:
            self._metrics.events.labels("ended_unmatched").inc()
            log_limited(log, "unmatched", LIMITED_INTERVAL_S,
                        "camera %s: ended event %s matches no recorded alert; its clip ends at max_clip_s",
                        event.camera, event.event_id)  # fmt: skip
        else:
            self._metrics.events.labels("ended").inc()
