"""SinkWorker: one sink's thread. It follows ``vigil:alerts`` through the sink's consumer group
and takes each event through filter → rate limit → deliver (retrying with full-jitter backoff up
to ``max_age_s``) → acknowledge, or dead-letter and acknowledge. In order, one event at a time.

An entry is acknowledged (XACK) only once the receiver has it or it is dead-lettered; until then
it stays pending in the group. A worker that stops releases what it read and did not finish: it
sets those entries' idle time to ``ABANDONED_IDLE_MS``, so the next owner's claim (XAUTOCLAIM, at
start and then every ``RECLAIM_INTERVAL_S`` while reads come back empty) takes them at once. A
replica that died holding entries cannot release them; they are taken once that long idle. So an
event whose delivery was cut short is delivered again: at least once, and a clean hand-over sends
nothing twice. The receiver de-duplicates on the event id.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

from alerts.history import as_text, entry_ms
from alerts.sinks.deadletter import DeadLetters
from alerts.sinks.filters import EventFilter, TokenBucket
from alerts.sinks.metrics import SinksMetrics
from alerts.sinks.targets import Sink
from shared import keys
from shared.backoff import Backoff
from shared.config import SinkBaseConfig
from shared.errors import SchemaError, SinkRejected, SinkUnavailable, StoreUnavailable
from shared.logs import LIMITED_INTERVAL_S, log_limited
from shared.redis import call
from shared.schemas import AlertEvent

log = logging.getLogger(__name__)
READ_COUNT = 100
READ_BLOCK_MS = 200
REDIS_RETRY_S = 0.5
RECLAIM_INTERVAL_S = 1.0
ABANDONED_IDLE_MS = 30_000
"""Entries pending this long are the owner's to claim: released by a stopped worker (which sets
their idle time to this), or held by a replica that died. Long enough that a worker still finishing
the delivery in hand when its sink moved (a request's timeout) is not doubled."""
RELEASE_COUNT = 1_000


@dataclass(frozen=True)
class GiveUp:
    reason: str
    """``rejected`` or ``expired``: a bounded metric label."""
    error: str
    attempts: int


class SinkWorker:
    def __init__(
        self, sink: Sink, config: SinkBaseConfig, *, client: redis.Redis, consumer: str, metrics: SinksMetrics
    ) -> None:
        self.sink = sink
        self.name = config.name
        self.group = keys.sink_group(config.name)
        self._config = config
        self._client = client
        self._consumer = consumer
        self._metrics = metrics
        self._filter = EventFilter.from_config(config)
        self._backoff = Backoff(base=config.retry_base_s, cap=config.retry_cap_s, jitter="full")
        self._bucket = (
            TokenBucket(rate_per_s=config.rate_per_s, burst=config.rate_burst, now=time.monotonic())
            if config.rate_per_s
            else None
        )
        self._dead = DeadLetters(client, config.name, maxlen=config.dead_maxlen)
        self._stop = threading.Event()
        self._farewell = True
        self._thread = threading.Thread(target=self._run, name=f"sink-{config.name}", daemon=True)
        self._group_ready = False
        self._claim: tuple[str, int] | None = ("0-0", ABANDONED_IDLE_MS)
        """(start id, least idle ms) of the next claim of pending entries; None: read new entries."""
        self._next_reclaim = time.monotonic() + RECLAIM_INTERVAL_S
        self.head_ms: int | None = None
        """Record time (ms) of the entry being delivered; None between entries."""

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, *, handed_over: bool = False) -> None:
        """Stop taking events; an event being retried stays pending for the next owner.
        ``handed_over``: the sink has another owner already (no farewell to the receiver)."""
        self._farewell = not handed_over
        self._stop.set()

    @property
    def crashed(self) -> bool:
        """The thread ended without being asked to (a bug: it is logged)."""
        return not self._thread.is_alive() and self._thread.ident is not None and not self._stop.is_set()

    def join(self, timeout_s: float) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        self.sink.open()
        try:
            while not self._stop.is_set():
                try:
                    self._step()
                except StoreUnavailable as error:
                    log_limited(
                        log,
                        f"redis:{self.name}",
                        LIMITED_INTERVAL_S,
                        "sink %s: %s; retrying",
                        self.name,
                        error,
                    )
                    self._claim = ("0-0", 0)  # what was in hand is pending: take it up again
                    self.head_ms = None
                    self._stop.wait(REDIS_RETRY_S)
                except redis.RedisError as error:  # refused (an ACL, OOM): say so, keep trying
                    log_limited(log, f"redis-error:{self.name}", LIMITED_INTERVAL_S,
                                "sink %s: redis refused: %s; retrying", self.name, error,
                                level=logging.ERROR)  # fmt: skip
                    self._claim = ("0-0", 0)
                    self.head_ms = None
                    self._stop.wait(REDIS_RETRY_S)
        except Exception:  # a bug: logged (redacted); the service starts the worker again
            log.exception("sink %s: worker failed", self.name)
        finally:
            self._release()
            self.sink.close(farewell=self._farewell)

    # -- reading -------------------------------------------------------------------------------

    def _step(self) -> None:
        if not self._group_ready:
            self.ensure_group(self._client, self._config)
            self._group_ready = True
        try:
            entries = self._claimed() if self._claim is not None else self._read()
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self._group_ready, self._claim = False, ("0-0", 0)  # Redis lost its data: start again
            return
        for entry_id, fields in entries:
            if self._stop.is_set():
                return
            self._handle(entry_id, fields)
        if self._claim is None and not entries and time.monotonic() >= self._next_reclaim:
            self._next_reclaim = time.monotonic() + RECLAIM_INTERVAL_S
            self._claim = ("0-0", ABANDONED_IDLE_MS)

    @staticmethod
    def ensure_group(client: redis.Redis, config: SinkBaseConfig) -> None:
        """Create the sink's consumer group if missing: at the newest entry, or before the oldest."""
        start = "$" if config.start_from == "now" else "0"
        try:
            call(
                lambda: client.xgroup_create(
                    keys.ALERTS, keys.sink_group(config.name), id=start, mkstream=True
                )
            )
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def _claimed(self) -> list[tuple[bytes, dict]]:
        """The next batch of the group's pending entries (cut-short deliveries), oldest first."""
        assert self._claim is not None
        start, idle_ms = self._claim
        reply = call(
            lambda: self._client.xautoclaim(
                keys.ALERTS, self.group, self._consumer, idle_ms, start_id=start, count=READ_COUNT
            )
        )
        next_start, entries = as_text(reply[0]), reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        if deleted:  # pending, but trimmed from the history before delivery
            self._metrics.trimmed.labels(self.name).inc(len(deleted))
            log.warning(
                "sink %s: %d pending events were trimmed from vigil:alerts before delivery",
                self.name,
                len(deleted),
            )
            call(lambda: self._client.xack(keys.ALERTS, self.group, *deleted))
        self._claim = None if next_start == "0-0" else (next_start, idle_ms)
        return [(entry_id, fields) for entry_id, fields in entries if fields is not None]

    def _release(self) -> None:
        """Leave what this worker read and did not finish to the sink's next owner, to take at once.

        Everything pending under this consumer in the sink's group is this worker's (one worker per
        sink and instance). Redis has no "unclaim": XCLAIM to itself with the idle time set to
        ABANDONED_IDLE_MS does it. If Redis does not answer, they are taken once that long idle."""
        try:
            held = call(
                lambda: self._client.xpending_range(
                    keys.ALERTS, self.group, "-", "+", RELEASE_COUNT, consumername=self._consumer
                )
            )
            if held:
                ids = [entry["message_id"] for entry in held]
                call(
                    lambda: self._client.xclaim(
                        keys.ALERTS, self.group, self._consumer, 0, ids, idle=ABANDONED_IDLE_MS, justid=True
                    )
                )
                log.info("sink %s: %d events left to the next owner", self.name, len(ids))
        except (StoreUnavailable, redis.RedisError) as error:
            log.warning(
                "sink %s: could not release the events in hand (%s); they are taken after %.0f s idle",
                self.name,
                error,
                ABANDONED_IDLE_MS / 1000,
            )

    def _read(self) -> list[tuple[bytes, dict]]:
        replies = call(
            lambda: self._client.xreadgroup(
                self.group, self._consumer, {keys.ALERTS: ">"}, count=READ_COUNT, block=READ_BLOCK_MS
            )
        )
        return replies[0][1] if replies else []

    # -- one event -----------------------------------------------------------------------------

    def _handle(self, entry_id: bytes, fields: dict) -> None:
        recorded_ms = entry_ms(entry_id)
        try:
            event = AlertEvent.decode(fields)
        except SchemaError as error:
            self._metrics.malformed.labels(error.reason).inc()
            log_limited(
                log,
                f"malformed:{error.reason}",
                LIMITED_INTERVAL_S,
                "sink %s: history entry %s skipped: %s",
                self.name,
                entry_id,
                error,
            )
            self._ack(entry_id)
            return
        if not self._filter.accepts(event):
            self._metrics.filtered.labels(self.name).inc()
            self._ack(entry_id)
            return
        self.head_ms = recorded_ms
        outcome = self._deliver(event, recorded_ms)
        if outcome is None:  # stopping: left pending
            return
        if isinstance(outcome, GiveUp):
            self._dead.add_and_ack(entry_id, event.to_json(), error=outcome.error, attempts=outcome.attempts)
            self._metrics.dead_lettered.labels(self.name, outcome.reason).inc()
            log_limited(
                log,
                f"dead:{self.name}",
                LIMITED_INTERVAL_S,
                "sink %s: event %s dead-lettered after %d attempts (%s): %s",
                self.name,
                event.event_id,
                outcome.attempts,
                outcome.reason,
                outcome.error,
            )
        else:
            self._ack(entry_id)
            self._metrics.delivered.labels(self.name).inc()
            self._metrics.delivery_seconds.labels(self.name).observe(
                max(0.0, time.time() - recorded_ms / 1000)
            )
        self.head_ms = None

    def _deliver(self, event: AlertEvent, recorded_ms: int) -> GiveUp | bool | None:
        """True when delivered, a GiveUp when given up on, None when stopped first."""
        attempt = 0
        while True:
            if not self._wait_for_rate():
                return None
            try:
                self.sink.deliver(event)
                return True
            except SinkRejected as error:
                return GiveUp("rejected", error.reason, attempt + 1)
            except SinkUnavailable as error:
                failure = error
            left_s = self._config.max_age_s - (time.time() - recorded_ms / 1000)
            if left_s <= 0:
                return GiveUp("expired", failure.reason, attempt + 1)
            delay_s = min(left_s, max(self._backoff.delay(attempt), failure.retry_after_s or 0.0))
            self._metrics.retried.labels(self.name).inc()
            log_limited(
                log,
                f"retry:{self.name}",
                LIMITED_INTERVAL_S,
                "sink %s: %s; retrying in %.1f s",
                self.name,
                failure.reason,
                delay_s,
            )
            attempt += 1
            if self._stop.wait(delay_s):
                return None

    def _wait_for_rate(self) -> bool:
        """Wait for the rate limit to let one attempt go; False if stopped meanwhile."""
        if self._bucket is None:
            return not self._stop.is_set()
        while (wait_s := self._bucket.wait_s(time.monotonic())) > 0:
            if self._stop.wait(wait_s):
                return False
        self._bucket.take(time.monotonic())
        return True

    def _ack(self, entry_id: bytes) -> None:
        call(lambda: self._client.xack(keys.ALERTS, self.group, entry_id))
