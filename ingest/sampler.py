"""Pure frame handling: sampling to a target fps by timestamp, aspect-keeping resize, encoding."""

from __future__ import annotations

import time

import cv2
import numpy as np

from shared.errors import DecodeError


class FpsSampler:
    """Decides which frames to keep so that kept frames are ``1/fps`` apart in stream time.

    Works on timestamps, not frame counts, so a 25 fps or a variable-rate source both give
    ``fps`` frames per second. After a gap (or a timestamp going backwards, e.g. a file loop)
    it takes the next frame and starts a new phase instead of bursting to catch up. A frame up
    to 10 % of a period early counts as due, so timestamp jitter (RTP clocks) does not skip it.
    """

    def __init__(self, fps: float) -> None:
        self.period_ms = 1000.0 / fps
        self._next_due_ms: float | None = None
        self._last_ms: float | None = None

    def take(self, t_ms: float) -> bool:
        went_back = self._last_ms is not None and t_ms < self._last_ms
        self._last_ms = t_ms
        if self._next_due_ms is None or went_back or t_ms >= self._next_due_ms + self.period_ms:
            self._next_due_ms = t_ms + self.period_ms
            return True
        if t_ms >= self._next_due_ms - 0.1 * self.period_ms:
            self._next_due_ms += self.period_ms
            return True
        return False


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
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


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

    It is the source's own timestamp (pts) while that advances; a source whose pts does not
    advance (some live streams report none) falls back to wall-clock time from then on.
    """

    def __init__(self, offset_ms: float = 0.0) -> None:
        self._offset_ms = offset_ms
        self._last_pts_ms: float | None = None
        self._wall_origin: tuple[float, float] | None = None  # (monotonic s, stream ms)

    def time_ms(self, pts_ms: float) -> float:
        if self._wall_origin is None:
            if self._last_pts_ms is None or pts_ms > self._last_pts_ms:
                self._last_pts_ms = pts_ms
                return self._offset_ms + pts_ms
            self._wall_origin = (time.monotonic(), self._offset_ms + self._last_pts_ms)
        start_s, start_ms = self._wall_origin
        return start_ms + (time.monotonic() - start_s) * 1000
