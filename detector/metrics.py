"""The detector service's Prometheus metrics (labels: camera, reason, label)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DROP_REASONS = (
    "superseded", "stale", "malformed", "clock_skew", "decode_failed", "inference_failed", "not_owned",
    "redis_unavailable",
)  # fmt: skip
SKIP_REASONS = ("no_motion",)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)


class DetectorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames_processed = Counter(
            "vigil_detector_frames_processed", "Frames run through the model", ["camera"], registry=r
        )
        self.frames_dropped = Counter(
            "vigil_detector_frames_dropped",
            "Frames not processed, by reason",
            ["camera", "reason"],
            registry=r,
        )
        self.frames_skipped = Counter(
            "vigil_detector_frames_skipped",
            "Frames not sent to the model on purpose, by reason (no_motion: motion gating)",
            ["camera", "reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            "vigil_detector_batch_size",
            "Frames per model batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.inference_seconds = Histogram(
            "vigil_detector_inference_seconds", "Model time per batch (preprocess, forward, NMS)",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.decode_seconds = Histogram(
            "vigil_detector_decode_seconds", "JPEG/raw decode time per frame",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05), registry=r,
        )  # fmt: skip
        self.queue_lag_seconds = Histogram(
            "vigil_detector_queue_lag_seconds",
            "Capture to inference start",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.latency_seconds = Histogram(
            "vigil_detector_latency_seconds",
            "Capture to detections published",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.detections = Counter(
            "vigil_detector_detections", "Objects reported, by label", ["camera", "label"], registry=r
        )
        self.verifications = Counter(
            "vigil_detector_verifications", "Tracked detections re-scored by the verifier", ["camera"],
            registry=r,
        )  # fmt: skip
        self.verify_seconds = Histogram(
            "vigil_detector_verify_seconds",
            "Verifier time per batch that verified a track (decode, crops, model)",
            buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.regions = Counter(
            "vigil_detector_regions", "Native-resolution crops run through the model (region inference)",
            ["camera"], registry=r,
        )  # fmt: skip
        self.region_detections = Counter(
            "vigil_detector_region_detections",
            "Detections kept from crops that the whole-frame pass did not have", ["camera"], registry=r,
        )  # fmt: skip
        self.cameras_owned = Gauge("vigil_detector_cameras_owned", "Cameras this replica holds", registry=r)
        self.live_tracks = Gauge("vigil_detector_live_tracks", "Tracks alive, all cameras", registry=r)
        self.model_loaded = Gauge("vigil_detector_model_loaded", "1 once the model is loaded", registry=r)
        self.engine_info = Gauge(
            "vigil_detector_engine_info",
            "1 for what runs the network; requested: the configured engine and precision (they differ "
            "after a fallback, which /readyz explains)",
            ["engine", "precision", "requested_engine", "requested_precision"], registry=r,
        )  # fmt: skip

    def init_camera(self, camera: str) -> None:
        self.frames_processed.labels(camera)
        self.regions.labels(camera)
        self.region_detections.labels(camera)
        for reason in DROP_REASONS:
            self.frames_dropped.labels(camera, reason)
        for reason in SKIP_REASONS:
            self.frames_skipped.labels(camera, reason)

    def drop(self, camera: str, reason: str) -> None:
        self.frames_dropped.labels(camera, reason).inc()
