"""The alerts service's Prometheus metrics (labels: rule, label, reason, camera)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AlertsMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.published = Counter(
            "vigil_alerts_published", "Events sent to subscribers, by rule, label and kind",
            ["rule", "label", "kind"], registry=r,
        )  # fmt: skip
        self.suppressed = Counter(
            "vigil_alerts_suppressed", "Sightings that did not (yet) alert, by rule and reason",
            ["rule", "reason"], registry=r,
        )  # fmt: skip
        self.duplicates = Counter(
            "vigil_alerts_duplicates",
            "Events already recorded (replays after a restart or hand-over)",
            registry=r,
        )
        self.latency_seconds = Histogram(
            "vigil_alerts_latency_seconds", "Frame capture to event published",
            buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0), registry=r,
        )  # fmt: skip
        self.send_errors = Counter("vigil_alerts_send_errors", "Events ZeroMQ refused to queue", registry=r)
        self.detections_consumed = Counter(
            "vigil_alerts_detections_consumed", "Detections entries handled", ["camera"], registry=r
        )
        self.detections_trimmed = Counter(
            "vigil_alerts_detections_trimmed",
            "Take-overs of a camera whose detections after its saved cursor were already trimmed "
            "from vigil:detections (never evaluated: raise detector.detections_maxlen)",
            ["camera"], registry=r,
        )  # fmt: skip
        self.malformed = Counter(
            "vigil_alerts_malformed", "Detections entries skipped, by reason", ["reason"], registry=r
        )
        self.stale = Counter(
            "vigil_alerts_stale_detections",
            "Detections entries ignored as replays or out of order (no newer seq or ts_ns), by camera",
            ["camera"], registry=r,
        )  # fmt: skip
        self.rule_states = Gauge(
            "vigil_alerts_rule_states", "(rule, camera, track) states the rules engine holds", registry=r
        )
        self.cameras_owned = Gauge("vigil_alerts_cameras_owned", "Cameras this replica evaluates", registry=r)
        self.forwarding = Gauge(
            "vigil_alerts_forwarding", "1 while this replica publishes over ZeroMQ", registry=r
        )

    def suppress(self, rule: str, _label: str, reason: str) -> None:
        self.suppressed.labels(rule, reason).inc()
