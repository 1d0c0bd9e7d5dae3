"""Which events a sink wants, and how fast it may be sent them. Pure: the clock is passed in."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import SEVERITIES, SinkBaseConfig
from shared.schemas import AlertEvent


@dataclass(frozen=True)
class EventFilter:
    """Empty sets accept everything; an unknown severity ranks below ``info``."""

    cameras: frozenset[str]
    labels: frozenset[str]
    rules: frozenset[str]
    kinds: frozenset[str]
    min_severity_rank: int

    @classmethod
    def from_config(cls, config: SinkBaseConfig) -> EventFilter:
        return cls(
            cameras=frozenset(config.cameras),
            labels=frozenset(config.labels),
            rules=frozenset(config.rules),
            kinds=frozenset(config.kinds),
            min_severity_rank=SEVERITIES.index(config.min_severity),
        )

    def accepts(self, event: AlertEvent) -> bool:
        rank = SEVERITIES.index(event.severity) if event.severity in SEVERITIES else -1
        return (
            (not self.cameras or event.camera in self.cameras)
            and (not self.labels or event.label in self.labels)
            and (not self.rules or event.rule in self.rules)
            and event.kind in self.kinds
            and rank >= self.min_severity_rank
        )


class TokenBucket:
    """At most ``rate_per_s`` events a second on average, ``burst`` at once. Events over the
    limit wait (they are delayed, never dropped)."""

    def __init__(self, *, rate_per_s: float, burst: int, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def wait_s(self, now: float) -> float:
        """Seconds until one event may go (0: now)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate_per_s

    def take(self, now: float) -> None:
        """One event went out."""
        self._refill(now)
        self._tokens -= 1

    def _refill(self, now: float) -> None:
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
