"""Retry policy as a value: exponential backoff with full jitter, and one retry helper."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``attempt`` (0-based): ``min(cap, base * 2**attempt)``, jittered.

    ``jitter="full"`` draws uniformly from ``[0, that]`` (AWS's "full jitter"), which spreads
    reconnect storms of many cameras or replicas; ``"none"`` returns the ceiling itself.
    """

    base: float = 0.5
    cap: float = 30.0
    jitter: Literal["full", "none"] = "full"
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"Backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")

    def ceiling(self, attempt: int) -> float:
        """The largest delay for this attempt (no jitter)."""
        # 2**attempt overflows float for huge attempts; the cap is reached long before.
        return self.cap if attempt >= 64 else min(self.cap, self.base * 2.0**attempt)

    def delay(self, attempt: int) -> float:
        ceiling = self.ceiling(attempt)
        return ceiling if self.jitter == "none" else self.rng.uniform(0.0, ceiling)


def retry(
    op: Callable[[], T],
    *,
    backoff: Backoff,
    retry_on: tuple[type[BaseException], ...],
    stop: threading.Event,
    on_failure: Callable[[BaseException, int, float], None] | None = None,
) -> T | None:
    """Call ``op`` until it succeeds or ``stop`` is set; returns ``None`` when stopped.

    Between attempts it waits ``backoff.delay(attempt)`` (interruptibly) and calls
    ``on_failure(error, attempt, delay)`` first, for logging and metrics.
    """
    attempt = 0
    while not stop.is_set():
        try:
            return op()
        except retry_on as error:
            delay = backoff.delay(attempt)
            if on_failure is not None:
                on_failure(error, attempt, delay)
            attempt += 1
            stop.wait(delay)
    return None
