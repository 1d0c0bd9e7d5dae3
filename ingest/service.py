"""IngestService: this worker's share of the cameras (through leases), a thread per camera."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace

import cv2
import redis

from ingest.metrics import IngestMetrics
from ingest.sources import OpenCVSource, SourceTimeouts
from ingest.worker import CameraWorker, SourceFactory, WorkerSettings
from shared.backoff import Backoff
from shared.config import CameraConfig, IngestConfig
from shared.service import LeasedService

log = logging.getLogger(__name__)
OPENCV_THREADS = 1
"""Threads in OpenCV's own pool (resize, JPEG encode) for the whole process. Every camera has a
thread of its own already; the pool's spinning workers cost 5 % more CPU per camera at real-time
pace (bench/ingest.py)."""
REAP_INTERVAL_S = 0.2
"""How often finished workers are looked for between lease rounds (burst mode ends this soon)."""


class IngestService(LeasedService):
    """Holds leases on an even share of the enabled cameras and runs a worker for each.

    It starts a worker for each camera it gains and stops those it loses. With ``burst=True`` it
    returns once every camera it runs has finished (files without ``loop`` or unreadable, or
    ``max_frames`` reached): tests and demos end deterministically.
    """

    lease_group = "ingest"

    def __init__(
        self,
        config: IngestConfig,
        cameras: tuple[CameraConfig, ...],
        *,
        client: redis.Redis,
        burst: bool = False,
        max_frames: int | None = None,
        metrics: IngestMetrics | None = None,
        source_factory: SourceFactory = OpenCVSource,
        frames_maxlen: Mapping[str, int] | None = None,
    ) -> None:
        """``frames_maxlen``: per camera, a bound of its frames stream other than ``stream_maxlen``
        (``VigilConfig.frames_maxlen``: the recorder's pre-roll)."""
        enabled = {camera.id: camera for camera in cameras if camera.enabled}
        super().__init__(
            config, list(enabled), client=client, metrics=metrics or IngestMetrics(), burst=burst
        )
        self.config: IngestConfig = config
        self.metrics: IngestMetrics
        self.camera_configs = enabled
        cv2.setNumThreads(OPENCV_THREADS)
        self._source_factory = source_factory
        self._settings = WorkerSettings(
            instance=self.instance,
            stream_maxlen=config.stream_maxlen,
            timeouts=SourceTimeouts(open_s=config.open_timeout_s, read_s=config.read_timeout_s),
            stall_timeout_s=config.stall_timeout_s,
            reconnect=Backoff(base=config.reconnect_base_s, cap=config.reconnect_cap_s),
            registry_interval_s=config.registry_interval_s,
            max_frames=max_frames,
            burst=burst,
        )
        self._frames_maxlen = dict(frames_maxlen or {})
        self.workers: dict[str, CameraWorker] = {}
        self._finished: set[str] = set()

    def on_start(self) -> None:
        log.info("ingest %s starting with %d enabled cameras", self.instance, len(self.cameras))

    def on_gained(self, camera: str) -> None:
        if camera in self._finished:
            return
        maxlen = self._frames_maxlen.get(camera, self.config.stream_maxlen)
        worker = CameraWorker(
            self.camera_configs[camera], client=self.client, metrics=self.metrics,
            settings=replace(self._settings, stream_maxlen=maxlen), source_factory=self._source_factory,
        )  # fmt: skip
        self.workers[camera] = worker
        worker.start()

    def on_lost(self, camera: str) -> None:
        if camera in self.workers:
            log.info("camera %s: stopping its worker", camera)
            self.workers.pop(camera).stop()

    def work(self, *, until: float) -> None:
        """Wait (at most :data:`REAP_INTERVAL_S`), then set finished workers aside."""
        self.idle(min(REAP_INTERVAL_S, until - time.monotonic()))
        for camera, worker in list(self.workers.items()):
            if worker.finished and not worker.is_alive():
                self._finished.add(camera)
                del self.workers[camera]

    def finished(self) -> bool:
        return not self.workers and bool(self._finished) and self._finished >= set(self.leases.owned)

    def on_stop(self) -> None:
        log.info("ingest %s stopping: closing %d cameras", self.instance, len(self.workers))
        for worker in self.workers.values():
            worker.stop()
        for worker in self.workers.values():
            worker.join(timeout=self.config.read_timeout_s + 2)
