"""Retry policy as a value: exponential backoff with full jitter (camera reconnects, the
publisher's Redis back-off)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal


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
