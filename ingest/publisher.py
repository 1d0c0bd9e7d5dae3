"""Frames into a camera's bounded Redis stream; Redis outages drop frames, never block capture."""

from __future__ import annotations

import logging
import time

import redis

from ingest.metrics import IngestMetrics
from shared import keys
from shared.backoff import Backoff
from shared.errors import StoreUnavailable
from shared.redis import call
from shared.schemas import Frame

log = logging.getLogger(__name__)
SEQ_RESET_ABOVE = 2**62
"""A stream whose last ``seq`` is above this was poisoned (no camera gets there: 120 fps for 10^9
years is 2^62 frames); continuing from it would soon overflow the schema's 2^63-1 and every frame
after would be refused. The sequence restarts at 0 instead (consumers treat a lower seq with a later
timestamp as new)."""


class FramePublisher:
    """XADD with ``MAXLEN ~ maxlen``: Redis memory stays bounded whatever consumers do.

    While Redis is down, frames are counted as dropped (``redis_unavailable``) without a network
    call until the next retry time (exponential backoff with jitter), so a camera thread keeps
    draining its source and the newest frame goes out as soon as Redis is back.
    ``next_seq`` continues the stream's last ``seq``, so sequence numbers stay monotonic per
    camera across worker restarts and handovers.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        camera: str,
        maxlen: int,
        metrics: IngestMetrics,
        backoff: Backoff,
    ) -> None:
        self.camera = camera
        self.stream = keys.frames_stream(camera)
        self._client = client
        self._maxlen = maxlen
        self._metrics = metrics
        self._backoff = backoff
        self._failures = 0
        self._retry_at = 0.0
        self.next_seq = 0

    def take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def publish(self, frame: Frame) -> bool:
        """Add ``frame``; False (and counted) when it was dropped because Redis is unavailable."""
        if self._failures and time.monotonic() < self._retry_at:
            self._drop()
            return False
        try:
            call(
                lambda: self._client.xadd(self.stream, frame.encode(), maxlen=self._maxlen, approximate=True)
            )
        except StoreUnavailable:
            self._on_failure()
            self._drop()
            return False
        if self._failures:
            log.info("camera %s: redis is back after %d failed attempts", self.camera, self._failures)
            self._failures = 0
        self._metrics.frames_published.labels(self.camera).inc()
        self._metrics.published_bytes.labels(self.camera).inc(len(frame.data))
        return True

    def sync_seq(self) -> None:
        """Continue after the last ``seq`` in the stream (if Redis answers; else keep ours)."""
        try:
            last = call(lambda: self._client.xrevrange(self.stream, count=1))
        except StoreUnavailable:
            return
        if not last:
            return
        try:
            last_seq = int(last[0][1][b"seq"])
        except (KeyError, ValueError):
            log.warning("camera %s: last stream entry has no valid seq", self.camera)
            return
        if not 0 <= last_seq <= SEQ_RESET_ABOVE:
            log.warning("camera %s: the stream's last seq %d is out of range; restarting the sequence at 0",
                        self.camera, last_seq)  # fmt: skip
            self._metrics.seq_resets.labels(self.camera).inc()
            return
        self.next_seq = max(self.next_seq, last_seq + 1)

    def _on_failure(self) -> None:
        delay = self._backoff.delay(self._failures)
        if self._failures == 0:
            log.warning("camera %s: redis unavailable, dropping frames; retry in %.1fs", self.camera, delay)
        self._failures += 1
        self._retry_at = time.monotonic() + delay

    def _drop(self) -> None:
        self._metrics.frames_dropped.labels(self.camera, "redis_unavailable").inc()
