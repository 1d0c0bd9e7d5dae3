"""Retention: the owned cameras' oldest media go first, for three reasons (each counted).

* ``age``: events started more than ``max_age_days`` ago are deleted, row, clip and snapshot;
* ``size``: beyond ``max_bytes_per_camera`` of clips and snapshots, the oldest events lose theirs
  (the event stays, ``clip_state`` = ``deleted``);
* ``free_space``: while the disk under ``clips_dir`` has less than ``min_free_bytes`` free, the
  oldest media of the owned cameras go (so a full disk makes room for the newest events).

Files are removed before the store forgets them: a crash in between leaves a row pointing at no
file (the web console answers 404), never a file no row knows of.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from recorder.metrics import RecordMetrics
from shared.config import RetentionConfig
from shared.eventstore import EventRecord, EventStore

log = logging.getLogger(__name__)
BATCH = 50
DAY_MS = 86_400_000


class Retention:
    def __init__(
        self, store: EventStore, clips_dir: Path, config: RetentionConfig, metrics: RecordMetrics
    ) -> None:
        self._store = store
        self._clips_dir = clips_dir
        self._config = config
        self._metrics = metrics

    def run(self, cameras: Iterable[str]) -> None:
        """One pass over ``cameras`` (the owned ones). Raises EventStoreUnavailable."""
        cameras = sorted(cameras)
        for camera in cameras:
            self._by_age(camera)
            self._by_size(camera)
        self.free_space(cameras)

    def _by_age(self, camera: str) -> None:
        before_ms = int(time.time() * 1000 - self._config.max_age_days * DAY_MS)
        while old := self._store.started_before(camera, before_ms, limit=BATCH):
            self._remove_files(old, "age")
            self._store.delete([record.event_id for record in old])
            if len(old) < BATCH:
                return

    def _by_size(self, camera: str) -> None:
        excess = self._store.media_bytes(camera) - self._config.max_bytes_per_camera
        while excess > 0 and (oldest := self._store.oldest_with_media(camera=camera, limit=BATCH)):
            for record in oldest:
                if excess <= 0:
                    return
                self._drop(record, "size")
                excess -= record.clip_bytes + record.snapshot_bytes

    def free_space(self, cameras: Sequence[str]) -> None:
        """Delete the owned cameras' oldest media while the disk is short of ``min_free_bytes``."""
        if not cameras or self._free_bytes() >= self._config.min_free_bytes:
            return
        while self._free_bytes() < self._config.min_free_bytes:
            oldest = [r for c in cameras for r in self._store.oldest_with_media(camera=c, limit=1)]
            if not oldest:
                log.warning("clips disk: %d bytes free, below record.retention.min_free_bytes, and no clip "
                            "of the owned cameras left to delete", self._free_bytes())  # fmt: skip
                return
            self._drop(min(oldest, key=lambda r: (r.started_ms, r.event_id)), "free_space")

    def _free_bytes(self) -> int:
        self._clips_dir.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self._clips_dir).free

    def _drop(self, record: EventRecord, reason: str) -> None:
        self._remove_files([record], reason)
        self._store.drop_media(record.event_id)

    def _remove_files(self, records: Sequence[EventRecord], reason: str) -> None:
        for record in records:
            paths = [p for p in (record.clip_path, record.snapshot_path) if p]
            for relative in paths:
                (self._clips_dir / relative).unlink(missing_ok=True)
            if paths:
                self._metrics.deleted.labels(reason).inc()
                self._metrics.deleted_bytes.labels(reason).inc(record.clip_bytes + record.snapshot_bytes)
        if records:
            log.info("retention (%s): media of %d events deleted, the oldest from %d ms", reason,
                     len(records), records[0].started_ms)  # fmt: skip
