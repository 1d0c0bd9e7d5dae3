"""One camera's clips in the making: which frames go into which clip, and the boxes drawn on them.

A :class:`ClipJob` is one event's clip: the frames captured from ``pre_s`` before the alert to
``post_s`` after it ended (or ``max_clip_s`` after the clip began, for an alert that does not end).
It reads the camera's frames stream from a little before its window, so the pre-roll comes from
what the bounded stream still holds and the rest as it arrives; a job started again after a crash
(the event still ``pending`` in the store) re-cuts the clip the same way from what is left.

A :class:`CameraFeed` holds the camera's recent detections, to draw them on the clip's frames.
With boxes drawn, a frame waits until the detector has passed it (a detections entry of that
``seq`` or later) or for at most ``DETECTION_WAIT_MS``: detections come after their frame.
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

from recorder.encoder import ClipEncoder, EncoderSettings
from shared.errors import DecodeError
from shared.eventstore import EventRecord
from shared.imaging import decode_bgr, draw_boxes
from shared.schemas import Box, Detections, Frame

log = logging.getLogger(__name__)
EntryKey = tuple[int, int]
"""A stream entry id as (ms, seq): ordered like Redis orders them."""
CURSOR_SLACK_MS = 10_000
"""A job reads the frames stream from this long before its window: entry ids are the time Redis
added the frame, its ``ts_ns`` the capture time, a little earlier."""
DETECTION_WAIT_MS = 2_000
BOX_HOLD_NS = 1_000_000_000
"""A frame the detector skipped (no motion, or behind) shows the boxes of the last frame it
inferred, if that is at most this much older."""
FINISH_GRACE_MS = 3_000
"""A clip whose camera sends nothing more is finished this long after its window's end."""
DETECTIONS_KEPT = 600


def entry_key(entry_id: bytes | str) -> EntryKey:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def cursor_text(key: EntryKey) -> str:
    return f"{key[0]}-{key[1]}"


def media_paths(record: EventRecord) -> tuple[str, str]:
    """The clip's and the snapshot's path, relative to ``clips_dir``: ``camera/YYYY-MM-DD/id.mp4``."""
    day = datetime.fromtimestamp(record.started_ms / 1000, UTC).strftime("%Y-%m-%d")
    stem = f"{record.camera}/{day}/{record.event_id}"
    return f"{stem}.mp4", f"{stem}.jpg"


class CameraFeed:
    """The recent detections of one camera, and how far the detector has got."""

    def __init__(self, camera: str, *, since_ms: int) -> None:
        self.camera = camera
        self.cursor: EntryKey = (max(0, since_ms - CURSOR_SLACK_MS), 0)
        self._detections: deque[Detections] = deque(maxlen=DETECTIONS_KEPT)

    @property
    def detected_seq(self) -> int:
        """The seq of the newest frame the detector has published detections for (-1: none yet)."""
        return self._detections[-1].seq if self._detections else -1

    def add(self, message: Detections) -> None:
        if message.camera == self.camera and message.seq > self.detected_seq:
            self._detections.append(message)

    def rewind(self, since_ms: int) -> None:
        """A job that starts earlier than the detections read: read them again from there."""
        start = (max(0, since_ms - CURSOR_SLACK_MS), 0)
        if start < self.cursor:
            self.cursor = start
            self._detections.clear()

    def boxes(self, frame: Frame) -> tuple[list[Box], list[str]]:
        """The boxes and captions to draw on ``frame`` (scaled to its size)."""
        for message in reversed(self._detections):
            if message.seq > frame.seq:
                continue
            if frame.ts_ns - message.ts_ns > BOX_HOLD_NS:
                break
            sx, sy = frame.width / message.width, frame.height / message.height
            boxes = [(o.box[0] * sx, o.box[1] * sy, o.box[2] * sx, o.box[3] * sy) for o in message.objects]
            captions = [
                f"{o.label} {o.score:.2f}" + ("" if o.track_id is None else f" #{o.track_id}")
                for o in message.objects
            ]
            return boxes, captions
        return [], []


class ClipJob:
    """One event's clip: offer it every frame of the camera, ``drain`` it, ``finish`` it when ``done``."""

    def __init__(
        self,
        record: EventRecord,
        *,
        clips_dir: Path,
        encoder: EncoderSettings,
        pre_s: float,
        post_s: float,
        max_clip_s: float,
        draw: bool,
    ) -> None:
        self.record = record
        self.clip_path, self.snapshot_path = media_paths(record)
        self.start_ms = record.started_ms - round(pre_s * 1000)
        self._post_ms, self._max_ms = round(post_s * 1000), round(max_clip_s * 1000)
        self._draw = draw
        self.cursor: EntryKey = (max(0, self.start_ms - CURSOR_SLACK_MS), 0)
        self._queue: deque[Frame] = deque()
        self._passed_end = False
        self.encoder = ClipEncoder(clips_dir / self.clip_path, encoder)
        self.last_ns: int | None = None
        self.undecodable = 0
        self.caught_up = False
        """The job has read the frames stream to its end (what is there now): the backlog is done."""

    @property
    def event_id(self) -> str:
        return self.record.event_id

    @property
    def end_ms(self) -> int:
        """The window's end: ``post_s`` after the alert ended, at most ``max_clip_s`` after its start."""
        longest = self.start_ms + self._max_ms
        return longest if self.record.ended_ms is None else min(longest, self.record.ended_ms + self._post_ms)

    def update(self, record: EventRecord) -> None:
        """The store's newer copy of the event (its end, once known)."""
        self.record = record

    def offer(self, key: EntryKey, frame: Frame) -> None:
        """A frame of the camera's stream (entries at or before the job's cursor are skipped)."""
        if key <= self.cursor:
            return
        self.cursor = key
        ts_ms = frame.ts_ns // 1_000_000
        if ts_ms < self.start_ms:
            return
        if ts_ms > self.end_ms:
            self._passed_end = True
            return
        self._queue.append(frame)

    def drain(self, feed: CameraFeed, now_ms: int) -> None:
        """Encode the queued frames whose detections are in (or that waited long enough)."""
        while self._queue:
            frame = self._queue[0]
            waited = now_ms - frame.ts_ns // 1_000_000 >= DETECTION_WAIT_MS
            if self._draw and frame.seq > feed.detected_seq and not waited:
                return
            self._queue.popleft()
            if frame.ts_ns // 1_000_000 > self.end_ms:  # the alert's end came in meanwhile
                self._passed_end = True
                continue
            try:
                image = decode_bgr(frame)
            except DecodeError:
                self.undecodable += 1
                continue
            if self._draw:
                image = draw_boxes(image, *feed.boxes(frame))
            self.encoder.add(image, frame.ts_ns)
            self.last_ns = frame.ts_ns

    def done(self, now_ms: int) -> bool:
        """The window is over: a frame past its end came, or the stream was read to its end and the
        camera sent nothing more for long enough."""
        over = self._passed_end or (self.caught_up and now_ms > self.end_ms + FINISH_GRACE_MS)
        return over and not self._queue
