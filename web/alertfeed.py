"""The live alert feed: ``vigil:alerts`` followed by one reader thread, fanned out to every
connected feed, each replaying the last events first.

A feed subscribes before it reads the replay, then drops live entries it already replayed (by
stream id), so an event recorded meanwhile is neither lost nor sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from shared import keys
from shared.errors import SchemaError, StoreUnavailable
from shared.logs import LIMITED_INTERVAL_S, log_limited
from shared.redis import RedisClient, call
from shared.schemas import AlertEvent
from shared.streams import read_streams
from web.metrics import WebMetrics

log = logging.getLogger(__name__)
BLOCK_MS = 500
QUEUE_MAX = 1000
"""Events buffered for one slow feed; past this it is cut off (the browser reconnects and replays)."""
RETRY_S = 0.5


@dataclass(frozen=True)
class FeedEntry:
    entry_id: str
    event: AlertEvent

    @property
    def ordinal(self) -> tuple[int, int]:
        ms, _, seq = self.entry_id.partition("-")
        return int(ms), int(seq or 0)


class FeedSubscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.queue: asyncio.Queue[FeedEntry | None] = asyncio.Queue(maxsize=QUEUE_MAX)

    def offer(self, entry: FeedEntry) -> None:
        self._loop.call_soon_threadsafe(self._put, entry)

    def _put(self, entry: FeedEntry) -> None:
        if self.queue.full():  # too slow: end this feed (None), the client reconnects
            self.queue.get_nowait()
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(entry)


class AlertFeed:
    def __init__(self, client: RedisClient, *, metrics: WebMetrics) -> None:
        self._client, self._metrics = client, metrics
        self._subscribers: set[FeedSubscriber] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def replay(self, count: int) -> list[FeedEntry]:
        """The last ``count`` events of the history, oldest first."""
        if count == 0:
            return []
        rows = call(lambda: self._client.xrevrange(keys.ALERTS, count=count))
        return [entry for entry in map(self._decode, reversed(rows)) if entry is not None]

    @contextlib.contextmanager
    def subscribed(self, loop: asyncio.AbstractEventLoop) -> Iterator[FeedSubscriber]:
        subscriber = FeedSubscriber(loop)
        with self._lock:
            self._subscribers.add(subscriber)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="alert-feed", daemon=True)
                self._thread.start()
        self._metrics.alert_feeds.inc()
        try:
            yield subscriber
        finally:
            self._metrics.alert_feeds.dec()
            with self._lock:
                self._subscribers.discard(subscriber)

    def _listening(self) -> list[FeedSubscriber]:
        with self._lock:
            if not self._subscribers:
                self._thread = None
            return list(self._subscribers)

    def _run(self) -> None:
        cursor: bytes | str = "$"
        while self._listening():
            try:
                if cursor == "$":  # "$" in a non-blocking cluster read means nothing: start at the newest id
                    newest = call(lambda: self._client.xrevrange(keys.ALERTS, count=1))
                    cursor = newest[0][0] if newest else b"0-0"
                for _stream, entries in read_streams(
                    self._client, {keys.ALERTS: cursor}, count=100, block_ms=BLOCK_MS
                ):
                    for entry_id, fields in entries:
                        cursor = entry_id
                        entry = self._decode((entry_id, fields))
                        if entry is not None:
                            for subscriber in self._listening():
                                subscriber.offer(entry)
            except StoreUnavailable as error:  # resumes after the last entry sent: none is skipped
                log_limited(log, "alerts", LIMITED_INTERVAL_S, "alert feed: %s", error)
                time.sleep(RETRY_S)

    def _decode(self, row: tuple[bytes, dict]) -> FeedEntry | None:
        entry_id, fields = row
        try:
            return FeedEntry(entry_id=entry_id.decode(), event=AlertEvent.decode(fields))
        except SchemaError as error:
            self._metrics.malformed.labels("alert", error.reason).inc()
            return None
