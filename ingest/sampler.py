"""Pure frame handling: sampling to a target fps by timestamp, aspect-keeping resize, encoding."""

from __future__ import annotations

import math
import statistics
import time
from collections import deque

import cv2
import numpy as np

from shared.errors import DecodeError
from shared.imaging import shrink


class FpsSampler:
    """Decides which frames to keep so that kept frames are ``1/fps`` apart in stream time.

    Works on timestamps, not frame counts, so a 25 fps or a variable-rate source both give
    ``fps`` frames per second. Due times are ``1/fps`` apart, and the frame kept for each is the
    one nearest it: the first frame at most half a *source* period before it. The source period
    is the median of the last :attr:`DELTAS` gaps between frames, so RTP timestamp jitter (frame
    gaps of 83-103 ms at 10 fps) neither skips frames at ``fps`` = source nor doubles them up.
    Kept frames are never closer than half a period. After a gap (or a timestamp going
    backwards, e.g. a file loop) it takes the next frame and starts a new phase instead of
    bursting to catch up.
    """

    DELTAS = 15
    """Gaps between frames in the median that estimates the source period."""

    def __init__(self, fps: float) -> None:
        self.period_ms = 1000.0 / fps
        self._due_ms: float | None = None
        self._last_ms: float | None = None
        self._kept_ms = -math.inf
        self._deltas: deque[float] = deque(maxlen=self.DELTAS)

    @property
    def source_period_ms(self) -> float | None:
        """The source's frame period as seen so far (None before the second frame)."""
        return statistics.median_low(self._deltas) if self._deltas else None

    def take(self, t_ms: float) -> bool:
        last_ms, self._last_ms = self._last_ms, t_ms
        if last_ms is not None and t_ms > last_ms:
            self._deltas.append(t_ms - last_ms)
        went_back = last_ms is not None and t_ms < last_ms
        if self._due_ms is None or went_back or t_ms >= self._due_ms + self.period_ms:
            return self._keep(t_ms, due_ms=t_ms)  # the first frame, or a new phase
        early_ms = min(self.source_period_ms or self.period_ms, self.period_ms) / 2
        if t_ms < self._due_ms - early_ms or t_ms - self._kept_ms < self.period_ms / 2:
            return False
        return self._keep(t_ms, due_ms=self._due_ms)

    def _keep(self, t_ms: float, *, due_ms: float) -> bool:
        self._due_ms = due_ms + self.period_ms
        self._kept_ms = t_ms
        return True


def fit_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Output size keeping aspect ratio with the longer side at most ``max_side``."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(image: np.ndarray, max_side: int | None) -> np.ndarray:
    height, width = image.shape[:2]
    size = fit_size(width, height, max_side)
    if size == (width, height):
        return image
    return shrink(image, size)


def encode(image: np.ndarray, codec: str, jpeg_quality: int) -> bytes:
    """BGR uint8 image to bytes: JPEG, or raw row-major BGR."""
    if codec == "raw":
        return np.ascontiguousarray(image).tobytes()
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise DecodeError("JPEG encoding failed")
    return buffer.tobytes()


class StreamClock:
    """Stream time of each frame of one open source, in ms from ``offset_ms``.

    It is the source's own timestamp (pts) while that advances. A frame whose pts does not
    advance keeps the time of the one before (FFmpeg gives an RTSP stream's first two frames both
    pts 0); a source whose pts has not advanced for :attr:`STUCK_FRAMES` frames in a row (some
    live streams report none) falls back to wall-clock time from then on.
    """

    STUCK_FRAMES = 3

    def __init__(self, offset_ms: float = 0.0) -> None:
        self._offset_ms = offset_ms
        self._last_pts_ms: float | None = None
        self._stuck = 0
        self._wall_origin: tuple[float, float] | None = None  # (monotonic s, stream ms)

    def time_ms(self, pts_ms: float) -> float:
        if self._wall_origin is None:
            if self._last_pts_ms is None or pts_ms > self._last_pts_ms:
                self._last_pts_ms, self._stuck = pts_ms, 0
                return self._offset_ms + pts_ms
            self._stuck += 1
            if self._stuck < self.STUCK_FRAMES:
                return self._offset_ms + self._last_pts_ms
            self._wall_origin = (time.monotonic(), self._offset_ms + self._last_pts_ms)
        start_s, start_ms = self._wall_origin
        return start_ms + (time.monotonic() - start_s) * 1000
