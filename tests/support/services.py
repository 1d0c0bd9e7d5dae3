"""Run a Vigil service (anything with ``run()`` and ``stop()``) on a thread for a test; wait for
conditions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar


class Service(Protocol):
    def run(self) -> None: ...
    def stop(self) -> None: ...


S = TypeVar("S", bound=Service)


@contextmanager
def running(service: S, *, stop_timeout_s: float = 30) -> Iterator[S]:
    thread = threading.Thread(target=service.run, name=f"{type(service).__name__}-under-test", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.stop()
        thread.join(timeout=stop_timeout_s)
        assert not thread.is_alive(), f"{type(service).__name__} did not stop"


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
