"""Ingest's Prometheus metrics (one registry per service instance; labels: camera, reason)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

DROP_REASONS = ("redis_unavailable", "encode_failed", "retrieve_failed")
"""Why a sampled frame did not reach Redis (bounded label set)."""


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames_read = Counter(
            "vigil_ingest_frames_read",
            "Frames decoded from the source (sampled or not)",
            ["camera"],
            registry=r,
        )
        self.frames_skipped = Counter(
            "vigil_ingest_frames_skipped", "Frames decoded, not sampled (source fps above target)",
            ["camera"], registry=r,
        )  # fmt: skip
        self.frames_published = Counter(
            "vigil_ingest_frames_published",
            "Frames added to the camera's Redis stream",
            ["camera"],
            registry=r,
        )
        self.frames_dropped = Counter(
            "vigil_ingest_frames_dropped", "Sampled frames that did not reach Redis, by reason",
            ["camera", "reason"], registry=r,
        )  # fmt: skip
        self.published_bytes = Counter(
            "vigil_ingest_published_bytes",
            "Encoded frame bytes added to Redis",
            ["camera"],
            registry=r,
        )
        self.reconnects = Counter(
            "vigil_ingest_reconnects",
            "Times a camera was reopened after a failure",
            ["camera"],
            registry=r,
        )
        self.seq_resets = Counter(
            "vigil_ingest_seq_resets",
            "Times a camera's sequence restarted at 0 because its stream's last seq was out of range",
            ["camera"],
            registry=r,
        )
        self.camera_up = Gauge(
            "vigil_ingest_camera_up",
            "1 while the camera delivers frames, else 0",
            ["camera"],
            registry=r,
        )
        self.decode_seconds = Histogram(
            "vigil_ingest_decode_seconds", "Time to read and decode one frame from the source",
            ["camera"], buckets=_SECONDS_BUCKETS, registry=r,
        )  # fmt: skip
        self.encode_seconds = Histogram(
            "vigil_ingest_encode_seconds", "Time to resize and encode one sampled frame",
            ["camera"], buckets=_SECONDS_BUCKETS, registry=r,
        )  # fmt: skip
        self.cameras_owned = Gauge(
            "vigil_ingest_cameras_owned", "Cameras this worker holds the lease of", registry=r
        )

    def init_camera(self, camera: str) -> None:
        """Create every series of a camera at zero, so rate() and alerts see it from the start."""
        for metric in (self.frames_read, self.frames_skipped, self.frames_published,
                       self.published_bytes, self.reconnects, self.seq_resets, self.camera_up):  # fmt: skip
            metric.labels(camera)
        for reason in DROP_REASONS:
            self.frames_dropped.labels(camera, reason)
