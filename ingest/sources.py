"""Video sources: OpenCV + FFmpeg captures for rtsp / http(s) / files / webcams, with timeouts.

Every failure is translated here into :class:`SourceUnavailable` (cannot open),
:class:`SourceStalled` (open, but no frame in time) or :class:`SourceEnded` (a file's end), and
messages name the camera only: the URL may carry a password.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from shared.config import CameraConfig
from shared.errors import DecodeError, SourceEnded, SourceStalled, SourceUnavailable

log = logging.getLogger(__name__)

FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
FFMPEG_THREADS_ENV = "OPENCV_FFMPEG_THREADS"
DECODER_THREADS = 1
"""FFmpeg decoder threads per capture, unless ``OPENCV_FFMPEG_THREADS`` is set. OpenCV's default
(one per CPU) costs up to 20 % more CPU per camera, and each camera has a thread of its own anyway
(bench/ingest.py). A ``threads`` capture option would not do this: it reaches the demuxer only."""


class VideoSource(Protocol):
    """What a camera worker needs from a source."""

    camera: str
    is_file: bool

    def open(self) -> None: ...
    def grab(self) -> None: ...
    def retrieve(self) -> np.ndarray: ...
    def position_ms(self) -> float: ...
    def native_fps(self) -> float: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceTimeouts:
    open_s: float = 10.0
    read_s: float = 5.0


class _CaptureOptionsGate:
    """FFmpeg capture options reach OpenCV only through one process-wide environment variable,
    read while a capture opens. Opens with the same options run concurrently; an open with other
    options (an RTSP-over-UDP camera among TCP ones) waits until those are done."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._current: str | None = None
        self._active = 0

    @contextmanager
    def options(self, value: str) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._active == 0 or self._current == value)
            self._current = value
            self._active += 1
            os.environ[FFMPEG_OPTIONS_ENV] = value
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()


_GATE = _CaptureOptionsGate()


def _file_path(url: str) -> str:
    return url[len("file://") :] if url.startswith("file://") else url


class OpenCVSource:
    """One camera through ``cv2.VideoCapture`` (FFmpeg backend; V4L2 for webcams)."""

    def __init__(self, camera: CameraConfig, timeouts: SourceTimeouts) -> None:
        self.camera = camera.id
        self.is_file = camera.kind == "file"
        self._config = camera
        self._timeouts = timeouts
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        kind = self._config.kind
        if kind == "file" and not Path(_file_path(self._config.url)).is_file():
            raise SourceUnavailable(self.camera, "file not found")
        capture = self._open_capture(kind)
        if not capture.isOpened():
            capture.release()
            what = "not a readable video" if kind == "file" else "cannot connect or open stream"
            raise SourceUnavailable(self.camera, what)
        self._capture = capture

    def _open_capture(self, kind: str) -> cv2.VideoCapture:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self._timeouts.open_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self._timeouts.read_s * 1000),
        ]  # fmt: skip
        if FFMPEG_THREADS_ENV not in os.environ:
            params += [cv2.CAP_PROP_N_THREADS, DECODER_THREADS]
        if kind == "webcam":
            url = self._config.url
            return cv2.VideoCapture(int(url) if url.isdigit() else url, cv2.CAP_V4L2)
        options = f"rtsp_transport;{self._config.rtsp_transport}" if kind == "rtsp" else ""
        with _GATE.options(options):
            return cv2.VideoCapture(_file_path(self._config.url), cv2.CAP_FFMPEG, params)

    def grab(self) -> None:
        """Read and decode the next frame (no colour conversion yet)."""
        if self._capture is None:
            raise SourceUnavailable(self.camera, "not open")
        if not self._capture.grab():
            if self.is_file:
                raise SourceEnded(self.camera, "end of file")
            raise SourceStalled(self.camera, "no frame within the read timeout, or stream closed")

    def retrieve(self) -> np.ndarray:
        """The last grabbed frame as BGR uint8."""
        assert self._capture is not None
        ok, image = self._capture.retrieve()
        if not ok or image is None or image.size == 0:
            raise DecodeError(f"camera {self.camera}: frame could not be retrieved")
        return image

    def position_ms(self) -> float:
        """Stream time of the last grabbed frame (FFmpeg's pts), 0 when the source has none."""
        return float(self._capture.get(cv2.CAP_PROP_POS_MSEC)) if self._capture is not None else 0.0

    def native_fps(self) -> float:
        return float(self._capture.get(cv2.CAP_PROP_FPS)) if self._capture is not None else 0.0

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
