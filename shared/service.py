"""The one service loop every Vigil service runs: leases on its share of the cameras, a metrics
endpoint, stop on SIGTERM/SIGINT, release on exit, burst mode.

A service subclasses :class:`LeasedService` and tells only its own story through hooks::

    on_start()            before the loop (start threads, open sockets)
    on_gained(camera)     a camera's lease was won: start following it (may raise StoreUnavailable:
                          the camera is offered again next round)
    on_lost(camera)       its lease is gone (another replica owns it now): forget it
    on_lease_round()      after each successful round (e.g. a second lease group)
    work(until)           one step of the service's own work, returning by the monotonic ``until``
                          (the next lease round); StoreUnavailable here marks the service not ready
    finished()            burst mode: True when there is nothing left to do
    on_stop()             after the loop, before the leases are released (drain, join, close)

The base class renews the leases every ``lease_ttl/3`` seconds; ``ready`` (the /readyz answer) is
whether Redis answered the last lease round.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar, Protocol

import redis
from prometheus_client import CollectorRegistry, Gauge

from shared.backoff import Backoff
from shared.config import ServiceConfig
from shared.errors import StoreUnavailable
from shared.leases import LeaseManager
from shared.metrics import serve_metrics

log = logging.getLogger(__name__)
REDIS_BACKOFF = Backoff(base=0.1, cap=1.0)
"""Pause after a work step that found Redis unavailable, growing with the failures in a row (until a
lease round succeeds); full jitter spreads the replicas that come back after a restart or a
cluster failover."""


class ServiceMetrics(Protocol):
    """What the loop needs of a service's metrics: the registry it serves and the owned-cameras gauge."""

    registry: CollectorRegistry
    cameras_owned: Gauge


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT call ``stop``; the previous handlers come back on exit.

    Only the main thread can install handlers; elsewhere (a service run on a thread) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class LeasedService:
    """Runs a service over the cameras of its lease group (see the module docstring for the hooks)."""

    lease_group: ClassVar[str]
    """Replicas of the same group share the cameras: ``ingest``, ``detect``, ``alerts``."""

    def __init__(
        self,
        config: ServiceConfig,
        cameras: Sequence[str],
        *,
        client: redis.Redis,
        metrics: ServiceMetrics,
        burst: bool = False,
    ) -> None:
        self.config = config
        self.instance = config.instance_id
        self.cameras = sorted(cameras)
        self.metrics = metrics
        self.burst = burst
        self.client = client
        self.leases = LeaseManager(
            client, group=self.lease_group, instance=self.instance, ttl_s=config.lease_ttl_s
        )
        self.active: set[str] = set()
        """Owned cameras whose ``on_gained`` has run (and ``on_lost`` not yet)."""
        self._stop = threading.Event()
        self._redis_ok: bool | None = None
        """Whether Redis answered the last time it was asked; None before the first time."""
        self._redis_failures = 0
        """Work steps in a row that found Redis unavailable (the backoff's attempt)."""

    @property
    def ready(self) -> bool:
        """Redis answered the last time it was asked (a lease round or a work step)."""
        return self._redis_ok is True

    @property
    def readiness_note(self) -> str | None:
        """A line ``/readyz`` adds to its answer: a subclass says so when it runs degraded."""
        return None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    def idle(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking at once on :meth:`stop`."""
        self._stop.wait(max(0.0, seconds))

    def run(self) -> None:
        server = serve_metrics(self.config, self.metrics.registry, ready=lambda: self.ready,
                               note=lambda: self.readiness_note)  # fmt: skip
        # the handlers stay until the leases are given back: a second SIGTERM while draining only
        # asks again to stop, it does not kill the process half-way through its clean-up
        with stop_on_signals(self.stop):
            try:
                self.on_start()
                self._loop()
            finally:
                self.on_stop()
                self._release()
                if server is not None:
                    server.close()

    def _loop(self) -> None:
        next_round = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_round:
                self._lease_round()
                next_round = time.monotonic() + self.leases.renew_interval_s
            try:
                self.work(until=next_round)
            except StoreUnavailable as error:
                self._redis_answered(False, error)
                self.idle(REDIS_BACKOFF.delay(self._redis_failures))
                self._redis_failures += 1
            if self.burst and self.finished():
                break

    def _lease_round(self) -> None:
        try:
            owned = self.leases.sync(self.cameras)
            for camera in sorted(owned - self.active):
                self.on_gained(camera)
                self.active.add(camera)
            self.on_lease_round()
        except StoreUnavailable as error:
            self._redis_answered(False, error)
            return
        self._redis_answered(True)
        for camera in sorted(self.active - owned):
            log.info("camera %s: %s lease lost", camera, self.lease_group)
            self.on_lost(camera)
            self.active.discard(camera)
        self.metrics.cameras_owned.set(len(owned))

    def _redis_answered(self, ok: bool, error: StoreUnavailable | None = None) -> None:
        """One warning when Redis goes away (or is away at start), one info line when it is back."""
        if not ok and self._redis_ok is not False:
            log.warning("%s %s: %s; keeping %d cameras, retrying", self.lease_group, self.instance, error,
                        len(self.active))  # fmt: skip
        elif ok and self._redis_ok is False:
            log.info("%s %s: redis answers again", self.lease_group, self.instance)
        if ok:
            self._redis_failures = 0
        self._redis_ok = ok

    def _release(self) -> None:
        """Give the leases back, so other replicas take the cameras over at once."""
        try:
            self.leases.release_all()
        except StoreUnavailable:
            log.warning("%s leases not released (redis unavailable); they expire in %.1fs", self.lease_group,
                        self.config.lease_ttl_s)  # fmt: skip
        self.metrics.cameras_owned.set(0)

    # -- hooks -------------------------------------------------------------------------------

    def on_start(self) -> None:
        """Before the loop."""

    def on_gained(self, camera: str) -> None:
        """This replica now owns ``camera``."""

    def on_lost(self, camera: str) -> None:
        """Another replica owns ``camera`` now."""

    def on_lease_round(self) -> None:
        """After each successful lease round, still inside its Redis guard."""

    def work(self, *, until: float) -> None:
        """One step of the service's own work; the default waits for the next lease round."""
        self.idle(until - time.monotonic())

    def finished(self) -> bool:
        """Burst mode: nothing left to do."""
        return False

    def on_stop(self) -> None:
        """After the loop, before the leases are released."""
