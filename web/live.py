"""Live camera views: one reader per viewed camera, fanned out to every viewer of it.

A :class:`CameraFeed` reads the camera's frames stream and detections stream together (one
``XREAD``: both carry the camera's hash tag) on a thread of its own, pairs each frame with the
detections of the same ``seq``, draws the boxes, and hands the JPEG to each viewer. A frame whose
detections have not come within ``detections_wait_ms`` (motion gating skipped it, or the detector
is behind or down) is shown as it is. The feed starts with its first viewer and stops with its
last: a camera nobody watches costs nothing. A slow viewer gets the newest frame, never a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from shared import keys
from shared.errors import DecodeError, SchemaError, StoreUnavailable
from shared.logs import LIMITED_INTERVAL_S, log_limited
from shared.redis import RedisClient, call
from shared.schemas import Detections, Frame
from shared.streams import read_streams
from web.metrics import WebMetrics
from web.render import annotate

log = logging.getLogger(__name__)
READ_COUNT = 50
MAX_BLOCK_MS = 100
"""Longest blocking read: how soon a feed notices its last viewer left."""
KEPT_DETECTIONS = 64
"""Detections held for frames not read yet (both streams come in one read, so rarely any)."""
RETRY_S = 0.5


@dataclass(frozen=True)
class LiveFrame:
    jpeg: bytes
    camera: str
    seq: int
    ts_ns: int
    """Capture time of the frame (the camera's wall clock, as ingest stamped it)."""


class Viewer:
    """One connection's mailbox: holds the newest frame only."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[LiveFrame] = asyncio.Queue(maxsize=1)

    def offer(self, frame: LiveFrame) -> None:
        """From the feed's thread: replace whatever is waiting with ``frame``."""
        self._loop.call_soon_threadsafe(self._put_newest, frame)

    def _put_newest(self, frame: LiveFrame) -> None:
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(frame)

    async def next(self, timeout_s: float) -> LiveFrame | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout_s)
        except TimeoutError:
            return None


class CameraFeed:
    def __init__(
        self, client: RedisClient, camera: str, *, wait_ms: float, jpeg_quality: int, metrics: WebMetrics
    ) -> None:
        self.camera = camera
        self._client, self._wait_s, self._quality, self._metrics = (
            client,
            wait_ms / 1000,
            jpeg_quality,
            metrics,
        )
        self._frames_key, self._detections_key = keys.frames_stream(camera), keys.detections_stream(camera)
        self._viewers: set[Viewer] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending: OrderedDict[int, tuple[Frame, float]] = OrderedDict()
        self._detections: OrderedDict[int, Detections] = OrderedDict()
        self._shown_seq = -1
        self._last: LiveFrame | None = None
        """The frame shown last: a viewer joining a running feed gets it at once."""

    def add(self, viewer: Viewer) -> None:
        with self._lock:
            self._viewers.add(viewer)
            if self._last is not None:
                viewer.offer(self._last)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"live:{self.camera}", daemon=True)
                self._metrics.feeds.inc()
                self._thread.start()

    def remove(self, viewer: Viewer) -> None:
        with self._lock:
            self._viewers.discard(viewer)

    def _watched(self) -> bool:
        with self._lock:
            if self._viewers:
                return True
            self._thread, self._last = None, None
            self._metrics.feeds.dec()
            return False

    def _run(self) -> None:
        cursors: dict[str, bytes | str] | None = None
        while self._watched():
            try:
                if cursors is None:
                    cursors = self._start()
                self._read(cursors)
            except StoreUnavailable as error:
                log_limited(
                    log, self.camera, LIMITED_INTERVAL_S, "camera %s live view: %s", self.camera, error
                )
                cursors = None
                time.sleep(RETRY_S)

    def _start(self) -> dict[str, bytes | str]:
        """Show the newest frame at once (with its detections if they are in), then read on from there."""
        self._pending.clear()
        self._detections.clear()
        self._shown_seq = -1
        last_frame = call(lambda: self._client.xrevrange(self._frames_key, count=1))
        recent = call(lambda: self._client.xrevrange(self._detections_key, count=8))
        for _id, fields in reversed(recent):
            self._take_detections(fields)
        if last_frame:
            self._take_frame(last_frame[0][1])
            self._flush(force=True)
        return {
            self._frames_key: last_frame[0][0] if last_frame else b"0-0",
            self._detections_key: recent[0][0] if recent else b"0-0",
        }

    def _read(self, cursors: dict[str, bytes | str]) -> None:
        block_ms = MAX_BLOCK_MS
        if self._pending:
            oldest = next(iter(self._pending.values()))[1]
            block_ms = max(1, min(MAX_BLOCK_MS, round((oldest + self._wait_s - time.monotonic()) * 1000)))
        replies = dict(read_streams(self._client, cursors, count=READ_COUNT, block_ms=block_ms))
        for stream, take in (
            (self._frames_key, self._take_frame),
            (self._detections_key, self._take_detections),
        ):
            for entry_id, fields in replies.get(stream, []):
                cursors[stream] = entry_id
                take(fields)
        self._flush(force=False)

    def _take_frame(self, fields: dict) -> None:
        try:
            frame = Frame.decode(fields)
        except SchemaError as error:
            self._malformed("frame", error)
            return
        if frame.seq > self._shown_seq:
            self._pending[frame.seq] = (frame, time.monotonic())

    def _take_detections(self, fields: dict) -> None:
        try:
            detections = Detections.decode(fields)
        except SchemaError as error:
            self._malformed("detections", error)
            return
        self._detections[detections.seq] = detections
        while len(self._detections) > KEPT_DETECTIONS:
            self._detections.popitem(last=False)

    def _flush(self, *, force: bool) -> None:
        """Show the newest frame whose detections are in, or, failing that, any frame that has waited
        out ``detections_wait_ms`` (``force``: the newest frame, now); older pending frames are dropped."""
        now = time.monotonic()
        ready = [seq for seq in self._pending if seq in self._detections]
        if ready:
            self._show(ready[-1], self._detections[ready[-1]])
        waited = [
            seq for seq, (_f, arrived) in self._pending.items() if force or now - arrived >= self._wait_s
        ]
        if waited:
            self._show(waited[-1], None)

    def _show(self, seq: int, detections: Detections | None) -> None:
        frame = self._pending[seq][0]
        for old in [s for s in self._pending if s <= seq]:
            del self._pending[old]
        self._shown_seq = seq
        try:
            jpeg, drawn = annotate(frame, detections, jpeg_quality=self._quality)
        except DecodeError as error:
            self._malformed("frame", SchemaError("undecodable", str(error)))
            return
        if drawn:
            self._metrics.frames_annotated.labels(self.camera).inc()
        elif detections is None:
            self._metrics.frames_unmatched.labels(self.camera).inc()
        live = LiveFrame(jpeg=jpeg, camera=self.camera, seq=frame.seq, ts_ns=frame.ts_ns)
        with self._lock:
            self._last = live
            viewers = list(self._viewers)
        for viewer in viewers:
            viewer.offer(live)

    def _malformed(self, kind: str, error: SchemaError) -> None:
        self._metrics.malformed.labels(kind, error.reason).inc()
        log_limited(
            log,
            f"{self.camera}:{kind}",
            LIMITED_INTERVAL_S,
            "camera %s: %s entry skipped (%s)",
            self.camera,
            kind,
            error,
        )


class LiveHub:
    """Every camera's feed, made on first view."""

    def __init__(
        self, client: RedisClient, *, wait_ms: float, jpeg_quality: int, metrics: WebMetrics
    ) -> None:
        self._client, self._wait_ms, self._quality, self._metrics = client, wait_ms, jpeg_quality, metrics
        self._feeds: dict[str, CameraFeed] = {}
        self._lock = threading.Lock()
        self.viewers = 0
        """Live views open now (all cameras)."""

    @contextlib.contextmanager
    def viewing(self, camera: str, loop: asyncio.AbstractEventLoop) -> Iterator[Viewer]:
        with self._lock:
            feed = self._feeds.get(camera)
            if feed is None:
                feed = self._feeds[camera] = CameraFeed(
                    self._client,
                    camera,
                    wait_ms=self._wait_ms,
                    jpeg_quality=self._quality,
                    metrics=self._metrics,
                )
            self.viewers += 1
        self._metrics.streams.inc()
        viewer = Viewer(loop)
        feed.add(viewer)
        try:
            yield viewer
        finally:
            feed.remove(viewer)
            self._metrics.streams.dec()
            with self._lock:
                self.viewers -= 1
