"""AlertService: detections → rules → recorded events → ZeroMQ subscribers.

Two jobs, both leased so replicas share them safely:

* **evaluate** (per camera, lease group ``alerts``): rules keep per-track state (k-of-n windows,
  open alerts, cooldowns), so each camera's detections go to one replica, in order. Every replica
  reads the detections streams of the cameras it owns (``vigil:{camera}:detections``). A camera's
  progress is saved as ``vigil:{camera}:alerts:cursor``; a new owner (after a crash, a restart or a
  hand-over) starts ``warmup_s`` before it, so the rule state is rebuilt from the same detections
  and the deterministic event ids make every re-derived event a duplicate that is not recorded
  again. None lost, none doubled.
* **forward** (one replica, lease group ``alerts-forward``): sends ``vigil:alerts`` entries over
  ZeroMQ in order, saving its position as ``vigil:alerts:forwarded``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import redis

from alerts.history import AlertHistory, entry_ms, history_since
from alerts.metrics import AlertsMetrics
from alerts.publisher import AlertPublisher
from alerts.rules import RuleEngine
from alerts.snapshots import SnapshotStore
from alerts.zones import zones_by_camera
from shared import keys
from shared.config import AlertsConfig, CameraConfig
from shared.errors import SchemaError, StoreUnavailable
from shared.leases import LeaseManager
from shared.logs import LIMITED_INTERVAL_S, log_limited
from shared.redis import call
from shared.schemas import AlertEvent, Detections
from shared.service import LeasedService
from shared.streams import read_streams

log = logging.getLogger(__name__)
FORWARD_GROUP, FORWARDER = "alerts-forward", "publisher"
READ_COUNT = 500
EVALUATE_BLOCK_MS = 100
RESTORE_LOOKBACK_S = 600.0
"""How far before a take-over's warm-up the camera's recorded events are read to seed the rules
engine (open alerts and cooldowns; at least the longest cooldown)."""


def entry_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


class AlertService(LeasedService):
    lease_group = "alerts"

    def __init__(
        self,
        config: AlertsConfig,
        cameras: Sequence[CameraConfig],
        *,
        client: redis.Redis,
        metrics: AlertsMetrics | None = None,
        warmup_s: float = 30.0,
        forward_grace_s: float = 0.5,
    ) -> None:
        enabled = [camera.id for camera in cameras if camera.enabled]
        super().__init__(config, enabled, client=client, metrics=metrics or AlertsMetrics())
        self.config: AlertsConfig = config
        self.metrics: AlertsMetrics
        self.engine = RuleEngine.from_config(
            config, zones_by_camera(cameras), on_suppressed=self.metrics.suppress,
            on_stale=lambda camera: self.metrics.stale.labels(camera).inc(),
        )  # fmt: skip
        self._warmup_ms = int(warmup_s * 1000)
        self._max_skew_ns = int(config.max_clock_skew_s * 1e9)
        self._restore_lookback_ms = int(1000 * max(RESTORE_LOOKBACK_S, *(r.cooldown_s for r in config.rules)))
        self._forward_grace_s = forward_grace_s
        self._history = AlertHistory(client, maxlen=config.history_maxlen)
        self._snapshots = SnapshotStore.from_config(client, config) if config.snapshots == "redis" else None
        self._forward_lease = LeaseManager(client, group=FORWARD_GROUP, instance=self.instance,
                                           ttl_s=config.lease_ttl_s)  # fmt: skip
        self._done_upto: dict[str, tuple[int, int]] = {}
        """Per owned camera: the last entry of its detections stream evaluated."""
        self._forwarding_since: float | None = None
        self._unrecorded: list[AlertEvent] = []
        self.publisher: AlertPublisher | None = None

    @property
    def ready(self) -> bool:
        return super().ready and self.publisher is not None

    def on_start(self) -> None:
        self.publisher = AlertPublisher(self.config.publish_endpoint, send_hwm=self.config.send_hwm,
                                        curve=self.config.curve)  # fmt: skip
        log.info("alerts %s starting: %d rules, %d cameras", self.instance, len(self.config.rules),
                 len(self.cameras))  # fmt: skip

    def work(self, *, until: float) -> None:
        self._record_pending()
        caught_up = self._evaluate(block_ms=EVALUATE_BLOCK_MS)
        self._forward()
        if caught_up:  # while replaying, time is the entries' time: no wall-clock sweep between batches
            self._unrecorded += self.engine.sweep(time.time_ns())
        self._record_pending()
        self.metrics.rule_states.set(self.engine.tracked)
        if self.publisher is not None:
            self.publisher.check_authorized()  # CURVE: subscribers added or revoked (vigil keys)

    def on_stop(self) -> None:
        try:
            self._forward_lease.release_all()
        except StoreUnavailable:
            log.warning("forwarding lease not released (redis unavailable)")
        if self.publisher is not None:
            self.publisher.close()

    # -- ownership -----------------------------------------------------------------------------

    def on_gained(self, camera: str) -> None:
        self._take_over(camera)

    def on_lost(self, camera: str) -> None:
        log.info("camera %s: alert rules moved to another replica", camera)
        del self._done_upto[camera]
        # Open alerts are not ended here: the new owner re-derives them in its warm-up and
        # ends them when the track does.
        self.engine.drop_camera(camera)

    def on_lease_round(self) -> None:
        """The forwarding job is a lease of its own: one replica sends over ZeroMQ."""
        forwarding = self._forward_lease.sync([FORWARDER])
        if forwarding and self._forwarding_since is None:
            self._forwarding_since = time.monotonic()  # let subscribers (re)connect before sending
        elif not forwarding:
            self._forwarding_since = None
        self.metrics.forwarding.set(1 if forwarding else 0)

    def _take_over(self, camera: str) -> None:
        """Start evaluating ``camera`` a warm-up before its saved cursor (or before now)."""
        saved = call(lambda: self.client.get(keys.alerts_cursor_key(camera)))
        self.metrics.detections_trimmed.labels(camera)
        if saved:
            self._check_not_trimmed(camera, saved)
        since_ms = max(0, (entry_ms(saved) if saved else int(time.time() * 1000)) - self._warmup_ms)
        recorded = history_since(self.client, max(0, since_ms - self._restore_lookback_ms))
        self.engine.restore(camera, (event for event in recorded if event.camera == camera))
        self._done_upto[camera] = (since_ms, 0)
        log.info("camera %s: evaluating rules from %d ms", camera, since_ms)

    def _check_not_trimmed(self, camera: str, cursor: bytes) -> None:
        """Warn and count when the camera's detections stream no longer reaches back to ``cursor``:
        the entries in between were trimmed before anyone evaluated them."""
        oldest = call(lambda: self.client.xrange(keys.detections_stream(camera), count=1))
        if oldest and entry_key(oldest[0][0]) > entry_key(cursor):
            self.metrics.detections_trimmed.labels(camera).inc()
            log.warning(
                "camera %s: %.1f s of detections after its saved cursor were trimmed before evaluation; "
                "alerts in them are lost (raise detector.detections_maxlen)",
                camera, (entry_ms(oldest[0][0]) - entry_ms(cursor)) / 1000,
            )  # fmt: skip

    # -- evaluate ------------------------------------------------------------------------------

    def _evaluate(self, *, block_ms: int) -> bool:
        """Evaluate the next entries of the owned cameras' detections streams; True when every
        stream was read to its end (caught up), False while catching up (after an outage or a
        take-over)."""
        if not self._done_upto:
            self.idle(block_ms / 1000)
            return True
        cameras = {keys.detections_stream(camera): camera for camera in self._done_upto}
        cursors = {stream: "{}-{}".format(*self._done_upto[camera]) for stream, camera in cameras.items()}
        replies = read_streams(self.client, cursors, count=READ_COUNT, block_ms=block_ms)
        advanced: dict[str, bytes] = {}
        for stream, entries in replies:
            camera = cameras[stream]
            for entry_id, fields in entries:
                self._done_upto[camera] = entry_key(entry_id)
                advanced[camera] = entry_id  # stepped over even if it fails below: no crash loop
                self._handle(camera, entry_id, fields)
        if advanced:

            def save() -> None:
                pipe = self.client.pipeline(transaction=False)
                for camera, entry_id in advanced.items():
                    pipe.set(keys.alerts_cursor_key(camera), entry_id)
                pipe.execute()

            call(save)
        return all(len(entries) < READ_COUNT for _stream, entries in replies)

    def _handle(self, camera: str, entry_id: bytes, fields: dict) -> None:
        try:
            message = Detections.decode(fields)
        except SchemaError as error:
            self.metrics.malformed.labels(error.reason).inc()
            log_limited(log, f"malformed:{error.reason}", LIMITED_INTERVAL_S,
                        "camera %s: detections entry %s skipped: %s", camera, entry_id, error)  # fmt: skip
            return
        if message.camera != camera:  # not the stream's camera: whose rules would it feed?
            self.metrics.malformed.labels("wrong_camera").inc()
            return
        if message.ts_ns > time.time_ns() + self._max_skew_ns:  # a camera or detector clock far ahead
            self.metrics.malformed.labels("clock_skew").inc()
            return
        self.metrics.detections_consumed.labels(camera).inc()
        try:
            events = self.engine.process(message)
        except Exception as error:  # noqa: BLE001  one poison entry must not stop every camera's alerts
            self.metrics.malformed.labels("unprocessable").inc()
            log_limited(log, f"unprocessable:{camera}", LIMITED_INTERVAL_S,
                        "detections entry %s of camera %s could not be evaluated; stepped over: %r",
                        entry_id, camera, error, level=logging.ERROR)  # fmt: skip
            return
        self._unrecorded += events
        self._record_pending()

    def _record_pending(self) -> None:
        """Record the events the rules produced, oldest first. If Redis fails half-way, the rest
        stay pending (the engine will not produce them again) and go first next time."""
        while self._unrecorded:
            self._record(self._unrecorded[0])
            self._unrecorded.pop(0)

    def _record(self, event: AlertEvent) -> None:
        if call(lambda: self.client.exists(keys.alert_recorded_key(event.event_id))):
            self.metrics.duplicates.inc()
            return
        if event.kind == "started" and self._snapshots is not None:
            event = replace(event, snapshot=self._snapshots.save(event))
        if self._history.record(event) is None:
            self.metrics.duplicates.inc()

    # -- forward -------------------------------------------------------------------------------

    def _forward(self) -> None:
        if (
            self._forwarding_since is None
            or time.monotonic() - self._forwarding_since < self._forward_grace_s
        ):
            return
        assert self.publisher is not None
        cursor = call(lambda: self.client.get(keys.ALERTS_FORWARDED)) or b"0-0"
        entries = self._history.after(cursor, count=READ_COUNT)
        if not entries:
            return
        for entry_id, fields in entries:
            try:
                event = AlertEvent.decode(fields)
            except SchemaError as error:
                self.metrics.malformed.labels(error.reason).inc()
                log_limited(log, f"history:{error.reason}", LIMITED_INTERVAL_S,
                            "alert history entry %s not forwarded: %s", entry_id, error)  # fmt: skip
                continue
            if self.publisher.send(event):
                self.metrics.published.labels(event.rule, event.label, event.kind).inc()
                if event.kind == "started":  # capture of the frame that fired → on the wire
                    self.metrics.latency_seconds.observe(max(0.0, (time.time_ns() - event.ts_ns) / 1e9))
            else:
                self.metrics.send_errors.inc()
        call(lambda: self.client.set(keys.ALERTS_FORWARDED, entries[-1][0]))
