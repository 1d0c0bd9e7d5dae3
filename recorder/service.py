"""RecordService: alert events → the event store, and an H.264 clip and a snapshot per alert.

Two jobs in one loop:

* **intake** (every replica): the ``record`` consumer group of ``vigil:alerts`` into the event
  store (recorder/intake.py);
* **clips** (per camera, lease group ``record``): the owner of a camera cuts the clips of its
  events that the store lists as ``pending``, from the camera's frames stream (recorder/clips.py),
  copies the alert's snapshot from Redis beside the clip, and runs retention (recorder/retention.py).

Faults: clips are written under a temporary name and renamed when complete. A recorder that
crashes leaves its events ``pending``: the camera's next owner (or itself, restarted) cuts them
again from what the frames stream still holds. One that is stopped (SIGTERM) or loses the
camera's lease finishes its open clips where they are. A full disk fails the clip at hand
(``disk_full``, counted), frees space by retention and records the next events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

from recorder.clips import CameraFeed, ClipJob, cursor_text, entry_key
from recorder.encoder import ClipWriteError, EncoderSettings, remove_stale_parts, write_file
from recorder.intake import EventIntake
from recorder.metrics import RecordMetrics
from recorder.retention import Retention
from shared import keys
from shared.config import CameraConfig, RecordConfig
from shared.errors import EventStoreUnavailable, SchemaError
from shared.eventstore import ClipState, EventRecord, EventStore
from shared.logs import LIMITED_INTERVAL_S, log_limited
from shared.redis import RedisClient, call
from shared.schemas import Detections, Frame
from shared.service import LeasedService
from shared.streams import read_streams

log = logging.getLogger(__name__)
SCHEDULE_INTERVAL_S = 0.5
"""How often the store's pending clips are looked up (new events, and the ends of open ones)."""
READ_COUNT = 100
READ_BLOCK_MS = 100
STORE_RETRY_S = 1.0
DEFAULT_FPS = 5.0


class RecordService(LeasedService):
    lease_group = "record"

    def __init__(
        self,
        config: RecordConfig,
        cameras: Sequence[CameraConfig],
        *,
        client: RedisClient,
        store: EventStore,
        metrics: RecordMetrics | None = None,
        burst: bool = False,
    ) -> None:
        enabled = {camera.id: camera for camera in cameras if camera.enabled}
        super().__init__(
            config, list(enabled), client=client, metrics=metrics or RecordMetrics(), burst=burst
        )
        self.config: RecordConfig = config
        self.metrics: RecordMetrics
        self.store = store
        self.clips_dir = Path(config.clips_dir)
        self._fps = {camera_id: camera.fps for camera_id, camera in enabled.items()}
        self._intake = EventIntake(client, store, consumer=self.instance, metrics=self.metrics)
        self._retention = Retention(store, self.clips_dir, config.retention, self.metrics)
        self.jobs: dict[str, ClipJob] = {}
        self._feeds: dict[str, CameraFeed] = {}
        self._next_schedule = 0.0
        self._next_retention = 0.0
        self._store_ok = True
        self._pending_left = True

    @property
    def ready(self) -> bool:
        return super().ready and self._store_ok

    def on_start(self) -> None:
        self.clips_dir.mkdir(parents=True, exist_ok=True)
        log.info(
            "record %s starting: %d cameras, clips in %s", self.instance, len(self.cameras), self.clips_dir
        )

    def on_gained(self, camera: str) -> None:
        remove_stale_parts(
            self.clips_dir / camera, older_than_s=self.config.max_clip_s + self.config.post_s + 60
        )

    def on_lost(self, camera: str) -> None:
        log.info("camera %s: recording moved to another replica", camera)
        for job in [job for job in self.jobs.values() if job.record.camera == camera]:
            self._finish(job)
        self._feeds.pop(camera, None)

    def on_stop(self) -> None:
        for job in list(self.jobs.values()):
            self._finish(job)

    def finished(self) -> bool:
        return self._intake.caught_up and not self.jobs and not self._pending_left

    def work(self, *, until: float) -> None:
        try:
            if self._intake.step(block_ms=0 if self.jobs else READ_BLOCK_MS):
                self._next_schedule = 0.0  # new events: look for their clips now
            if self._intake.synced and time.monotonic() >= self._next_schedule:
                self._next_schedule = time.monotonic() + SCHEDULE_INTERVAL_S
                self._schedule()
            if self.jobs:
                self._follow()
            for job in [job for job in self.jobs.values() if job.done(_now_ms())]:
                self._finish(job)
            if time.monotonic() >= self._next_retention:
                self._next_retention = time.monotonic() + self.config.retention.interval_s
                self._retention.run(self.active)
            self._store_answered(True)
        except EventStoreUnavailable as error:
            self._store_answered(False, error)
            self.idle(min(STORE_RETRY_S, until - time.monotonic()))

    def _store_answered(self, ok: bool, error: EventStoreUnavailable | None = None) -> None:
        if not ok:
            self.metrics.store_errors.inc()
            log_limited(log, "store", LIMITED_INTERVAL_S, "record %s: %s; retrying", self.instance, error)
        elif not self._store_ok:
            log.info("record %s: event store answers again", self.instance)
        self._store_ok = ok

    # -- clips ------------------------------------------------------------------------------------

    def _schedule(self) -> None:
        """Start a job for each new pending event of an owned camera; refresh the open ones (their end)."""
        pending = self.store.pending_clips(self.active)
        self._pending_left = bool(pending)
        for record in pending:
            job = self.jobs.get(record.event_id)
            if job is not None:
                job.update(record)
            else:
                self._start(record)
        self.metrics.clips_open.set(len(self.jobs))

    def _start(self, record: EventRecord) -> None:
        settings = EncoderSettings(fps=self._fps.get(record.camera, DEFAULT_FPS), crf=self.config.crf,
                                   preset=self.config.preset)  # fmt: skip
        job = ClipJob(record, clips_dir=self.clips_dir, encoder=settings, pre_s=self.config.pre_s,
                      post_s=self.config.post_s, max_clip_s=self.config.max_clip_s,
                      draw=self.config.draw_boxes)  # fmt: skip
        self.jobs[record.event_id] = job
        feed = self._feeds.get(record.camera)
        if feed is None:
            self._feeds[record.camera] = CameraFeed(record.camera, since_ms=job.start_ms)
        else:
            feed.rewind(job.start_ms)
        if record.snapshot_path is None:
            self._copy_snapshot(job)
        log.info("camera %s: clip of event %s started (%s)", record.camera, record.event_id, job.clip_path)

    def _copy_snapshot(self, job: ClipJob) -> None:
        """The alert's JPEG from Redis (the alerts service's snapshot) to a file beside the clip."""
        record = job.record
        data = call(lambda: self.client.get(keys.snapshot_key(record.camera, record.event_id)))
        if not data:
            return  # snapshots off, or already expired
        try:
            size = write_file(self.clips_dir / job.snapshot_path, data)
        except ClipWriteError as error:
            self._write_failed(record, error, "snapshot")
            return
        self.metrics.clip_bytes.inc(size)
        self.store.set_snapshot(record.event_id, path=job.snapshot_path, size_bytes=size)

    def _follow(self) -> None:
        """Read the next frames (and detections) of the cameras with open clips, and hand them out."""
        cursors: dict[str, str] = {}
        for camera in {job.record.camera for job in self.jobs.values()}:
            cursors[keys.frames_stream(camera)] = cursor_text(min(j.cursor for j in self._jobs_of(camera)))
            if self.config.draw_boxes:
                cursors[keys.detections_stream(camera)] = cursor_text(self._feeds[camera].cursor)
        behind: set[str] = set()
        for stream, entries in read_streams(self.client, cursors, count=READ_COUNT, block_ms=READ_BLOCK_MS):
            if stream.endswith(":detections"):
                self._take_detections(stream, entries)
            else:
                self._take_frames(stream, entries)
                behind.update([stream] if len(entries) == READ_COUNT else [])
        for job in self.jobs.values():
            job.caught_up = keys.frames_stream(job.record.camera) not in behind
        now_ms = _now_ms()
        for job in list(self.jobs.values()):
            try:
                job.drain(self._feeds[job.record.camera], now_ms)
            except ClipWriteError as error:  # ffmpeg failed mid-clip (a full disk): the clip is lost
                del self.jobs[job.event_id]
                self._clip_failed(job, error)

    def _jobs_of(self, camera: str) -> list[ClipJob]:
        return [job for job in self.jobs.values() if job.record.camera == camera]

    def _take_frames(self, stream: str, entries: list[tuple[bytes, dict]]) -> None:
        camera = next(c for c in self._feeds if keys.frames_stream(c) == stream)
        jobs = self._jobs_of(camera)
        for entry_id, fields in entries:
            try:
                frame = Frame.decode(fields)
            except SchemaError as error:
                self.metrics.malformed.labels(f"frame_{error.reason}").inc()
                frame = None
            key = entry_key(entry_id)
            for job in jobs:
                if frame is None or frame.camera != camera:
                    job.cursor = max(job.cursor, key)
                else:
                    job.offer(key, frame)

    def _take_detections(self, stream: str, entries: list[tuple[bytes, dict]]) -> None:
        feed = next(f for c, f in self._feeds.items() if keys.detections_stream(c) == stream)
        for entry_id, fields in entries:
            feed.cursor = entry_key(entry_id)
            try:
                feed.add(Detections.decode(fields))
            except SchemaError as error:
                self.metrics.malformed.labels(f"detections_{error.reason}").inc()

    def _finish(self, job: ClipJob) -> None:
        """Finish the clip with the frames it has: ``done``, or ``failed`` with the reason."""
        del self.jobs[job.event_id]
        self.metrics.undecodable.inc(job.undecodable)
        record = job.record
        if job.encoder.first_ns is None or job.last_ns is None:
            job.encoder.abort()
            self.metrics.clips_failed.labels("frames_gone").inc()
            log.warning("camera %s: no frames left for the clip of event %s (the frames stream no longer "
                        "holds them)", record.camera, record.event_id)  # fmt: skip
            self.store.set_clip(record.event_id, state=ClipState.FAILED, error="frames_gone")
            return
        try:
            size = job.encoder.finish()
        except ClipWriteError as error:
            self._clip_failed(job, error)
            return
        start_ms, end_ms = job.encoder.first_ns // 1_000_000, job.last_ns // 1_000_000
        self.store.set_clip(record.event_id, state=ClipState.DONE, path=job.clip_path, size_bytes=size,
                            start_ms=start_ms, end_ms=end_ms)  # fmt: skip
        self.metrics.clips_written.inc()
        self.metrics.clip_bytes.inc(size)
        self.metrics.clip_seconds.inc(job.encoder.slots / job.encoder.fps)
        log.info("camera %s: clip of event %s written: %.1f s, %d bytes", record.camera, record.event_id,
                 job.encoder.slots / job.encoder.fps, size)  # fmt: skip

    def _clip_failed(self, job: ClipJob, error: ClipWriteError) -> None:
        job.encoder.abort()
        self.metrics.clips_failed.labels(error.reason).inc()
        self._write_failed(job.record, error, "clip")
        self.store.set_clip(job.event_id, state=ClipState.FAILED, error=error.reason)

    def _write_failed(self, record: EventRecord, error: ClipWriteError, what: str) -> None:
        if error.reason == "disk_full":
            self.metrics.disk_full.inc()
            log_limited(log, "disk_full", LIMITED_INTERVAL_S,
                        "camera %s: %s of event %s lost: no space left under %s; deleting the oldest clips",
                        record.camera, what, record.event_id, self.clips_dir,
                        level=logging.ERROR)  # fmt: skip
            self._retention.free_space(sorted(self.active))
        else:
            log_limited(log, f"write:{what}", LIMITED_INTERVAL_S, "camera %s: %s of event %s not written: %s",
                        record.camera, what, record.event_id, error, level=logging.ERROR)  # fmt: skip


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
