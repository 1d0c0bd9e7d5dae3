"""IngestService: this worker's share of the cameras (through leases), a thread per camera."""

from __future__ import annotations

import logging
import threading

import cv2
import redis

from ingest.metrics import IngestMetrics
from ingest.sources import OpenCVSource, SourceTimeouts
from ingest.worker import CameraWorker, SourceFactory, WorkerSettings
from shared.backoff import Backoff
from shared.config import CameraConfig, IngestConfig
from shared.errors import StoreUnavailable
from shared.leases import LeaseManager
from shared.metrics import serve_metrics
from shared.service import Heartbeat, stop_on_signals

log = logging.getLogger(__name__)
LEASE_GROUP = "ingest"
OPENCV_THREADS = 1
"""Threads in OpenCV's own pool (resize, JPEG encode) for the whole process. Every camera has a
thread of its own already; the pool's spinning workers cost 5 % more CPU per camera at real-time
pace (bench/ingest.py)."""


class IngestService:
    """Holds leases on an even share of the enabled cameras and runs a worker for each.

    Every ``lease_ttl/3`` seconds it renews its leases, starts workers for cameras it gained and
    stops those it lost. With ``burst=True`` it returns once every camera it runs has finished
    (files without ``loop`` or unreadable, or ``max_frames`` reached): tests and demos end
    deterministically.
    """

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
    ) -> None:
        self.config = config
        self.instance = config.instance_id
        self.cameras = {camera.id: camera for camera in cameras if camera.enabled}
        self.metrics = metrics or IngestMetrics()
        cv2.setNumThreads(OPENCV_THREADS)
        self._client = client
        self._burst = burst
        self._source_factory = source_factory
        self._leases = LeaseManager(
            client, group=LEASE_GROUP, instance=self.instance, ttl_s=config.lease_ttl_s
        )
        self._heartbeat = Heartbeat(
            client, service="ingest", instance=self.instance, ttl_s=3 * config.lease_ttl_s
        )
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
        self.workers: dict[str, CameraWorker] = {}
        self._finished: set[str] = set()
        self._stop = threading.Event()
        self._redis_ok = False

    @property
    def ready(self) -> bool:
        """Redis answered the last lease round."""
        return self._redis_ok

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        server = serve_metrics(self.config, self.metrics.registry, ready=lambda: self.ready)
        log.info("ingest %s starting with %d enabled cameras", self.instance, len(self.cameras))
        try:
            with stop_on_signals(self.stop):
                while not self._stop.is_set():
                    self._tick()
                    if self._burst and self._all_finished():
                        break
                    self._stop.wait(self._leases.renew_interval_s)
        finally:
            self._shutdown()
            if server is not None:
                server.close()

    def _tick(self) -> None:
        try:
            owned = self._leases.sync(sorted(self.cameras))
            self._redis_ok = self._heartbeat.beat()
        except StoreUnavailable as error:
            if self._redis_ok:
                log.warning("lease round failed (%s); keeping %d cameras running", error, len(self.workers))
            self._redis_ok = False
            return
        for camera in set(self.workers) - owned:
            log.info("camera %s: lease lost, stopping", camera)
            self.workers.pop(camera).stop()
        for camera in sorted(owned - set(self.workers) - self._finished):
            worker = CameraWorker(
                self.cameras[camera], client=self._client, settings=self._settings,
                metrics=self.metrics, source_factory=self._source_factory,
            )  # fmt: skip
            self.workers[camera] = worker
            worker.start()
        for camera, worker in list(self.workers.items()):
            if worker.finished and not worker.is_alive():
                self._finished.add(camera)
                del self.workers[camera]
        self.metrics.cameras_owned.set(len(owned))

    def _all_finished(self) -> bool:
        return not self.workers and bool(self._finished) and self._finished >= set(self._leases.owned)

    def _shutdown(self) -> None:
        log.info("ingest %s stopping: closing %d cameras", self.instance, len(self.workers))
        for worker in self.workers.values():
            worker.stop()
        for worker in self.workers.values():
            worker.join(timeout=self.config.read_timeout_s + 2)
        try:
            self._leases.release_all()
        except StoreUnavailable:
            log.warning(
                "leases not released (redis unavailable); they expire in %.1fs",
                self.config.lease_ttl_s,
            )
        self._heartbeat.clear()
        self.metrics.cameras_owned.set(0)
