"""Snapshots: the frame that raised an event, with its box drawn, kept in Redis with a TTL and
at most ``max_per_camera`` a camera.

The frame comes from the camera's bounded frame stream; if it has already been trimmed away the
event's ``snapshot`` says ``gone`` (and ``undecodable`` for a frame that would not decode).

Each camera's snapshot keys are kept in order in a sorted set (``vigil:{camera}:snapshots``,
scored by event time). Saving is two transactions: store the JPEG, index it and read what lies
beyond the bound; then delete those keys and their index entries. A crash between the two leaves
the excess in the index, where the next save finds it again; and every key has its TTL anyway.
"""

from __future__ import annotations

import logging

import cv2
import redis

from shared import keys
from shared.config import AlertsConfig
from shared.errors import DecodeError, SchemaError, StoreUnavailable
from shared.imaging import decode_bgr, draw_boxes
from shared.redis import call
from shared.schemas import AlertEvent, Frame

log = logging.getLogger(__name__)
SEARCH_DEPTH = 300
"""Newest frame-stream entries searched for the event's frame."""
GONE, UNDECODABLE = "gone", "undecodable"


class SnapshotStore:
    def __init__(self, client: redis.Redis, *, ttl_s: int, max_per_camera: int) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._max_per_camera = max_per_camera

    @classmethod
    def from_config(cls, client: redis.Redis, config: AlertsConfig) -> SnapshotStore:
        return cls(client, ttl_s=config.snapshot_ttl_s, max_per_camera=config.snapshot_max_per_camera)

    def save(self, event: AlertEvent) -> str:
        """Store the annotated frame; returns the Redis key, ``gone`` or ``undecodable``."""
        frame = self._find(event.camera, event.seq)
        if frame is None:
            return GONE
        try:
            image = draw_boxes(decode_bgr(frame), [event.box], [f"{event.label} {event.score:.2f}"])
        except DecodeError:
            return UNDECODABLE
        jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        key = keys.snapshot_key(event.camera, event.event_id)
        self._store(keys.snapshots_key(event.camera), key, jpeg, ts_ms=event.ts_ns // 1_000_000)
        return key

    def _store(self, index: str, key: str, jpeg: bytes, *, ts_ms: int) -> None:
        def store_and_find_excess() -> list[bytes]:
            pipe = self._client.pipeline(transaction=True)
            pipe.set(key, jpeg, ex=self._ttl_s)
            pipe.zadd(index, {key: ts_ms})  # saved again after a crash: the same member, no duplicate
            pipe.expire(index, self._ttl_s)
            pipe.zrange(index, 0, -self._max_per_camera - 1)  # all but the newest max_per_camera
            return pipe.execute()[-1]

        excess = call(store_and_find_excess)
        if not excess:
            return

        def delete_excess() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.delete(*excess)
            pipe.zrem(index, *excess)
            pipe.execute()

        call(delete_excess)
        log.debug("%s: %d oldest snapshots deleted (bound %d)", index, len(excess), self._max_per_camera)

    def _find(self, camera: str, seq: int) -> Frame | None:
        try:
            entries = call(lambda: self._client.xrevrange(keys.frames_stream(camera), count=SEARCH_DEPTH))
        except StoreUnavailable:
            return None
        for _entry_id, fields in entries:
            try:
                if int(fields.get(b"seq", -1)) == seq:
                    return Frame.decode(fields)
            except (SchemaError, ValueError):
                continue
        return None
