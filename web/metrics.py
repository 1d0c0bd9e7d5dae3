"""The console's Prometheus metrics (labels: camera, reason, result, kind)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WebMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.streams = Gauge("vigil_web_streams", "Live camera streams being served", registry=r)
        self.feeds = Gauge(
            "vigil_web_camera_feeds", "Cameras read from Redis (viewed by someone)", registry=r
        )
        self.frames_sent = Counter(
            "vigil_web_frames_sent",
            "Frames sent to viewers (one per viewer), by camera",
            ["camera"],
            registry=r,
        )
        self.frames_annotated = Counter(
            "vigil_web_frames_annotated",
            "Frames re-encoded with their boxes drawn, by camera",
            ["camera"],
            registry=r,
        )
        self.frames_unmatched = Counter(
            "vigil_web_frames_without_detections",
            "Frames shown without boxes: no detections arrived within detections_wait_ms",
            ["camera"],
            registry=r,
        )
        self.frame_latency_seconds = Histogram(
            "vigil_web_frame_latency_seconds",
            "Frame capture to the frame handed to a viewer's connection",
            buckets=(0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self.malformed = Counter(
            "vigil_web_malformed",
            "Stream entries skipped, by kind and reason",
            ["kind", "reason"],
            registry=r,
        )
        self.alert_feeds = Gauge("vigil_web_alert_feeds", "Live alert feeds connected", registry=r)
        self.events_sent = Counter("vigil_web_events_sent", "Alert events sent to live feeds", registry=r)
        self.logins = Counter(
            "vigil_web_logins", "Login attempts, by result (ok, refused, limited)", ["result"], registry=r
        )
        self.denied = Counter(
            "vigil_web_denied", "Requests refused, by reason (unauthenticated, csrf)", ["reason"], registry=r
        )
        self.reviews = Counter("vigil_web_reviews", "Events marked reviewed or not reviewed", registry=r)
