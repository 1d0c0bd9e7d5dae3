"""The sinks service's Prometheus metrics (label ``sink``: the configured names, a bounded set)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class SinksMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.delivered = Counter(
            "vigil_sinks_delivered", "Events the receiver acknowledged", ["sink"], registry=r
        )
        self.retried = Counter(
            "vigil_sinks_retried", "Deliveries that failed and were tried again", ["sink"], registry=r
        )
        self.dead_lettered = Counter(
            "vigil_sinks_dead_lettered",
            "Events given up on (refused, or too old to retry), by reason",
            ["sink", "reason"],
            registry=r,
        )
        self.filtered = Counter(
            "vigil_sinks_filtered", "Events the sink's filters left out", ["sink"], registry=r
        )
        self.malformed = Counter(
            "vigil_sinks_malformed", "History entries that are not events, skipped", ["reason"], registry=r
        )
        self.trimmed = Counter(
            "vigil_sinks_trimmed",
            "Events trimmed from vigil:alerts before the sink delivered them (raise alerts.history_maxlen)",
            ["sink"],
            registry=r,
        )
        self.lag_events = Gauge(
            "vigil_sinks_lag_events",
            "Events in the history not yet delivered or dead-lettered",
            ["sink"],
            registry=r,
        )
        self.lag_seconds = Gauge(
            "vigil_sinks_lag_seconds",
            "Age of the oldest event not yet delivered or dead-lettered",
            ["sink"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "vigil_sinks_delivery_seconds",
            "Event recorded in vigil:alerts to acknowledged by the receiver",
            ["sink"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
            registry=r,
        )
        self.cameras_owned = Gauge(
            "vigil_sinks_owned", "Sinks this replica delivers to (the leased items)", registry=r
        )
