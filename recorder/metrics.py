"""The recorder's Prometheus metrics (labels: kind, reason: bounded)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class RecordMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "vigil_record_events", "Alert history entries stored, by kind (started, duplicate, ended, "
            "ended_unmatched)", ["kind"], registry=r,
        )  # fmt: skip
        self.malformed = Counter(
            "vigil_record_malformed", "Alert history entries skipped, by reason", ["reason"], registry=r
        )
        self.clips_written = Counter("vigil_record_clips_written", "Clips finished and in place", registry=r)
        self.clips_failed = Counter(
            "vigil_record_clips_failed", "Clips not written, by reason (frames_gone, disk_full, encoder)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.clip_bytes = Counter(
            "vigil_record_clip_bytes", "Bytes of clips and snapshots written", registry=r
        )
        self.clip_seconds = Counter(
            "vigil_record_clip_seconds", "Seconds of video in the clips written", registry=r
        )
        self.deleted = Counter(
            "vigil_record_deleted", "Clips deleted by retention, by reason (age, size, free_space)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.deleted_bytes = Counter(
            "vigil_record_deleted_bytes", "Bytes deleted by retention, by reason", ["reason"], registry=r
        )
        self.disk_full = Counter(
            "vigil_record_disk_full",
            "Writes refused for want of space (the clip or snapshot is lost)",
            registry=r,
        )
        self.store_errors = Counter(
            "vigil_record_store_errors",
            "Event store requests that failed (unreachable or refused)",
            registry=r,
        )
        self.undecodable = Counter("vigil_record_undecodable_frames", "Frames left out of clips", registry=r)
        self.clips_open = Gauge("vigil_record_clips_open", "Clips being written", registry=r)
        self.cameras_owned = Gauge("vigil_record_cameras_owned", "Cameras this replica records", registry=r)
