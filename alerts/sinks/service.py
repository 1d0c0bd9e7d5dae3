"""SinkService: delivers recorded events to the configured sinks, a lease per sink.

The lease unit is the sink: replicas of ``vigil sinks`` share the sinks (lease group ``sinks``),
and each sink is delivered by one replica at a time, in the order of the history, through its own
consumer group of ``vigil:alerts`` (``sink:<name>``). A worker thread per owned sink does the
delivering (alerts/sinks/worker.py); this loop holds the leases, starts and stops the workers and
updates the lag metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import redis

from alerts.history import as_text, entry_ms
from alerts.sinks.metrics import SinksMetrics
from alerts.sinks.targets import open_sink
from alerts.sinks.worker import SinkWorker
from shared import keys
from shared.config import SinkConfig, SinksConfig
from shared.logs import LIMITED_INTERVAL_S, log_limited
from shared.redis import call
from shared.schemas import AlertEvent
from shared.service import LeasedService

log = logging.getLogger(__name__)
LAG_INTERVAL_S = 1.0
STOP_TIMEOUT_S = 10.0
"""How long a stopping worker may take to finish the delivery in hand."""


class SinkService(LeasedService):
    lease_group = "sinks"

    def __init__(
        self,
        config: SinksConfig,
        *,
        client: redis.Redis,
        sensors: Sequence[tuple[str, str]] = (),
        metrics: SinksMetrics | None = None,
    ) -> None:
        """``sensors``: the (camera, rule) pairs MQTT sinks announce to Home Assistant."""
        super().__init__(
            config, [t.name for t in config.targets], client=client, metrics=metrics or SinksMetrics()
        )
        self.config: SinksConfig = config
        self.metrics: SinksMetrics
        self.targets = {target.name: target for target in config.targets}
        for target in config.targets:  # a secret or CA file that will not load stops the start, naming it
            open_sink(target)
        self._sensors = tuple(sensors)
        self.workers: dict[str, SinkWorker] = {}
        self._next_lag = 0.0

    def on_start(self) -> None:
        log.info("sinks %s starting: %d sinks", self.instance, len(self.targets))

    def on_gained(self, sink: str) -> None:
        old = self.workers.pop(sink, None)
        if old is not None:
            old.join(STOP_TIMEOUT_S)
        target = self.targets[sink]
        worker = SinkWorker(
            open_sink(target, sensors=self._sensors_of(target), snapshots=self._snapshot),
            target,
            client=self.client,
            consumer=self.instance,
            metrics=self.metrics,
        )
        SinkWorker.ensure_group(self.client, target)  # before the lease round ends: StoreUnavailable retries
        self.workers[sink] = worker
        worker.start()
        log.info("sink %s: delivering", sink)

    def on_lost(self, sink: str) -> None:
        log.info("sink %s: moved to another replica", sink)
        self.workers[sink].stop(handed_over=True)  # joined when gained again, or at the end
        self.metrics.lag_events.remove(sink)
        self.metrics.lag_seconds.remove(sink)

    def work(self, *, until: float) -> None:
        for name in [name for name in self.active if self.workers[name].crashed]:
            log_limited(
                log,
                f"crashed:{name}",
                LIMITED_INTERVAL_S,
                "sink %s: worker failed; starting it again",
                name,
                level=logging.ERROR,
            )
            self.on_gained(name)
        if time.monotonic() >= self._next_lag:
            self._next_lag = time.monotonic() + LAG_INTERVAL_S
            self._update_lag()
        self.idle(min(until, self._next_lag) - time.monotonic())

    def on_stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        for name, worker in self.workers.items():
            if not worker.join(STOP_TIMEOUT_S):
                log.warning("sink %s: worker did not stop in %.0f s", name, STOP_TIMEOUT_S)

    # -- helpers -------------------------------------------------------------------------------

    def _sensors_of(self, target: SinkConfig) -> list[tuple[str, str]]:
        return [
            (camera, rule)
            for camera, rule in self._sensors
            if (not target.cameras or camera in target.cameras) and (not target.rules or rule in target.rules)
        ]

    def _snapshot(self, event: AlertEvent) -> bytes | None:
        """The JPEG the alerts service stored for ``event`` (None: none, or expired)."""
        if not event.snapshot or not event.snapshot.startswith(keys.snapshot_key(event.camera, "")):
            return None
        return call(lambda: self.client.get(event.snapshot))

    def _update_lag(self) -> None:
        """Per owned sink: events not yet delivered (unread + pending) and the oldest one's age."""
        owned = [name for name in self.active if name in self.workers]
        if not owned:
            return
        try:
            replies = call(lambda: self.client.xinfo_groups(keys.ALERTS))
        except redis.ResponseError:  # no history (Redis lost its data): the workers start it again
            return
        groups = {as_text(g["name"]): g for g in replies}
        now_ms = time.time() * 1000
        for name in owned:
            group = groups.get(keys.sink_group(name))
            if group is None:
                continue
            unread, pending = group.get("lag") or 0, group.get("pending") or 0
            oldest = [ms for ms in (self.workers[name].head_ms, self._oldest_pending(name)) if ms is not None]
            if unread:
                following = call(
                    lambda g=group: self.client.xrange(
                        keys.ALERTS, min=f"({as_text(g['last-delivered-id'])}", count=1
                    )
                )
                oldest += [entry_ms(following[0][0])] if following else []
            self.metrics.lag_events.labels(name).set(unread + pending)
            self.metrics.lag_seconds.labels(name).set(
                max(0.0, (now_ms - min(oldest)) / 1000) if oldest else 0.0
            )

    def _oldest_pending(self, sink: str) -> int | None:
        summary = call(lambda: self.client.xpending(keys.ALERTS, keys.sink_group(sink)))
        return entry_ms(summary["min"]) if summary.get("pending") and summary.get("min") else None
