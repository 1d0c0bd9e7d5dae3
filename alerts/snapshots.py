"""Snapshots: the frame that raised an event, with its box drawn, kept in Redis with a TTL.

The frame comes from the camera's bounded frame stream; if it has already been trimmed away the
event's ``snapshot`` says ``gone`` (and ``undecodable`` for a frame that would not decode).
"""

from __future__ import annotations

import logging

import cv2
import redis

from shared import keys
from shared.errors import DecodeError, SchemaError, StoreUnavailable
from shared.imaging import decode_bgr, draw_boxes
from shared.redis import call
from shared.schemas import AlertEvent, Frame

log = logging.getLogger(__name__)
SEARCH_DEPTH = 300
"""Newest frame-stream entries searched for the event's frame."""
GONE, UNDECODABLE = "gone", "undecodable"


class SnapshotStore:
    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self._client = client
        self._ttl_s = ttl_s

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
        key = keys.snapshot_key(event.event_id)
        call(lambda: self._client.set(key, jpeg, ex=self._ttl_s))
        return key

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
