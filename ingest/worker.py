"""One camera's capture loop on its own thread: open, sample, encode, publish, reconnect.

OpenCV releases the GIL while FFmpeg decodes, so one process runs many cameras this way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from ingest.metrics import IngestMetrics
from ingest.publisher import FramePublisher
from ingest.sampler import FpsSampler, StreamClock, encode, resize
from ingest.sources import OpenCVSource, SourceTimeouts, VideoSource
from shared.backoff import Backoff
from shared.config import CameraConfig
from shared.errors import DecodeError, SourceEnded, SourceError, SourceStalled, StoreUnavailable
from shared.registry import CameraState, CameraStatus, write_status
from shared.schemas import Frame

log = logging.getLogger(__name__)
SourceFactory = Callable[[CameraConfig, SourceTimeouts], VideoSource]


@dataclass(frozen=True)
class WorkerSettings:
    instance: str
    stream_maxlen: int
    timeouts: SourceTimeouts
    stall_timeout_s: float
    reconnect: Backoff
    registry_interval_s: float
    max_frames: int | None = None
    """Stop after publishing this many frames (tests, demos)."""
    burst: bool = False
    """Finite run: a file that cannot be read ends its camera instead of being retried."""


class _Finished(Exception):
    """The camera is done for good: a file without loop ended, or max_frames was reached."""


class CameraWorker:
    """Runs one camera until :meth:`stop`, reconnecting with exponential backoff and full jitter."""

    def __init__(
        self,
        camera: CameraConfig,
        *,
        client: redis.Redis,
        settings: WorkerSettings,
        metrics: IngestMetrics,
        source_factory: SourceFactory = OpenCVSource,
    ) -> None:
        self.camera = camera
        self._client = client
        self._settings = settings
        self._metrics = metrics
        self._source = source_factory(camera, settings.timeouts)
        self._publisher = FramePublisher(
            client, camera=camera.id, maxlen=settings.stream_maxlen, metrics=metrics,
            backoff=Backoff(base=0.1, cap=2.0),
        )  # fmt: skip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cam-{camera.id}", daemon=True)
        self.state: CameraState = "connecting"
        self._published = 0
        self._reconnects = 0
        self._last_error = ""
        self._last_frame_ns = 0
        self._size = (0, 0)
        self._usable = 0  # frames that reached the publisher (stall detection, backoff reset)
        self._fps = 0.0
        self._fps_mark = (time.monotonic(), 0)  # (time, usable frames then)
        self._status_due = 0.0
        metrics.init_camera(camera.id)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return self.state == "ended"

    def _run(self) -> None:
        self._publisher.sync_seq()
        attempt = 0
        try:
            while not self._stop.is_set():
                self._set_state("connecting")
                usable_before = self._usable
                try:
                    self._source.open()
                    self._stream()
                except _Finished:
                    self._set_state("ended")
                    return
                except SourceError as error:
                    if self._stop.is_set():
                        break
                    if self._settings.burst and self._source.is_file:
                        log.warning("%s; giving up (burst run)", error)
                        self._last_error = str(error)
                        self._set_state("ended")
                        return
                    attempt = 0 if self._usable > usable_before else attempt
                    self._back_off(error, attempt)
                    attempt += 1
                finally:
                    self._source.close()
            self._set_state("stopped")
        finally:
            self._metrics.camera_up.labels(self.camera.id).set(0)

    def _back_off(self, error: SourceError, attempt: int) -> None:
        delay = self._settings.reconnect.delay(attempt)
        self._last_error = str(error)
        self._reconnects += 1
        self._metrics.reconnects.labels(self.camera.id).inc()
        self._metrics.camera_up.labels(self.camera.id).set(0)
        self._set_state("backoff")
        log.warning("%s; reconnect attempt %d in %.2fs", error, attempt + 1, delay)
        self._stop.wait(delay)

    # -- the frame loop --------------------------------------------------------------------

    def _stream(self) -> None:
        """Read until stopped; raises SourceError to reconnect, _Finished when done."""
        cam = self.camera
        sampler = FpsSampler(cam.fps)
        clock = StreamClock()
        pace = cam.realtime and self._source.is_file
        last_frame_at = time.monotonic()
        t_ms = 0.0
        frames_this_pass = 0
        pace_origin: tuple[float, float] | None = None  # (monotonic s, stream ms)
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                self._source.grab()
            except SourceEnded:
                if not cam.loop:
                    raise _Finished from None
                if frames_this_pass == 0:
                    raise SourceStalled(cam.id, "file yields no frames") from None
                native_fps = self._source.native_fps()
                frame_ms = 1000 / native_fps if 0 < native_fps <= 1000 else sampler.period_ms
                clock = StreamClock(offset_ms=t_ms + frame_ms)
                frames_this_pass = 0
                self._source.open()
                continue
            self._metrics.decode_seconds.labels(cam.id).observe(time.perf_counter() - started)
            self._metrics.frames_read.labels(cam.id).inc()
            frames_this_pass += 1
            t_ms = clock.time_ms(self._source.position_ms())
            if pace:
                pace_origin = pace_origin or (time.monotonic(), t_ms)
                wait_s = pace_origin[0] + (t_ms - pace_origin[1]) / 1000 - time.monotonic()
                if wait_s > 0 and self._stop.wait(wait_s):
                    return
            ts_ns = time.time_ns()  # after pacing: when a live camera would deliver it
            if time.monotonic() - last_frame_at > self._settings.stall_timeout_s:
                raise SourceStalled(cam.id, f"no usable frame for {self._settings.stall_timeout_s:.0f}s")
            if not sampler.take(t_ms):
                self._metrics.frames_skipped.labels(cam.id).inc()
                continue
            if self._publish(ts_ns=ts_ns, pts_ms=int(t_ms)):
                self._usable += 1
                last_frame_at = time.monotonic()
                if self.state != "streaming":
                    self._metrics.camera_up.labels(cam.id).set(1)
                    self._set_state("streaming")
            self._report_if_due()
            if self._settings.max_frames is not None and self._published >= self._settings.max_frames:
                raise _Finished

    def _publish(self, *, ts_ns: int, pts_ms: int) -> bool:
        """Retrieve, resize, encode and publish the grabbed frame; False if it was dropped."""
        cam = self.camera
        try:
            image = self._source.retrieve()
        except DecodeError:
            self._metrics.frames_dropped.labels(cam.id, "retrieve_failed").inc()
            return False
        started = time.perf_counter()
        try:
            image = resize(image, cam.max_side)
            data = encode(image, cam.codec, cam.jpeg_quality)
        except DecodeError:
            self._metrics.frames_dropped.labels(cam.id, "encode_failed").inc()
            return False
        self._metrics.encode_seconds.labels(cam.id).observe(time.perf_counter() - started)
        height, width = image.shape[:2]
        self._size = (width, height)
        self._last_frame_ns = ts_ns
        frame = Frame(
            camera=cam.id, seq=self._publisher.take_seq(), ts_ns=ts_ns, pts_ms=pts_ms,
            width=width, height=height, codec=cam.codec, data=data,
        )  # fmt: skip
        if self._publisher.publish(frame):
            self._published += 1
        # A frame that reached the publisher counts as a usable frame even if Redis dropped it:
        # the camera is fine, and stall detection is about the camera.
        return True

    # -- status ----------------------------------------------------------------------------

    def _set_state(self, state: CameraState) -> None:
        self.state = state
        self._write_status()

    def _report_if_due(self) -> None:
        now = time.monotonic()
        if now >= self._status_due:
            self._write_status()

    def _write_status(self) -> None:
        now = time.monotonic()
        self._status_due = now + self._settings.registry_interval_s
        mark_time, mark_count = self._fps_mark
        if now - mark_time >= 2.0:
            self._fps = (self._usable - mark_count) / (now - mark_time)
            self._fps_mark = (now, self._usable)
        status = CameraStatus(
            camera=self.camera.id, state=self.state, owner=self._settings.instance,
            updated_ns=time.time_ns(), last_frame_ns=self._last_frame_ns, fps=round(self._fps, 2),
            width=self._size[0], height=self._size[1], frames_published=self._published,
            reconnects=self._reconnects, last_error=self._last_error,
        )  # fmt: skip
        try:
            write_status(self._client, status)
        except StoreUnavailable:
            log.debug("camera %s: status not written, redis unavailable", self.camera.id)
