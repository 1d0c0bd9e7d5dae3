"""What every service loop shares: stop on SIGTERM/SIGINT, and a heartbeat key with a TTL."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

import redis

from shared import keys
from shared.errors import StoreUnavailable
from shared.redis import call

log = logging.getLogger(__name__)


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


class Heartbeat:
    """Refreshes ``vigil:heartbeat:{service}:{instance}`` with a TTL; it vanishes when we die."""

    def __init__(self, client: redis.Redis, *, service: str, instance: str, ttl_s: float) -> None:
        self._client = client
        self._key = keys.heartbeat_key(service, instance)
        self._ttl_ms = max(1, int(ttl_s * 1000))

    def beat(self) -> bool:
        """True when written (Redis answered)."""
        try:
            call(lambda: self._client.set(self._key, b"1", px=self._ttl_ms))
        except StoreUnavailable:
            return False
        return True

    def clear(self) -> None:
        with contextlib.suppress(StoreUnavailable):
            call(lambda: self._client.delete(self._key))
