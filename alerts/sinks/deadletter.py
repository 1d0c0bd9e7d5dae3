"""Dead letters: the events a sink gave up on (refused, or still failing at ``max_age_s``), each
with its last error, in the bounded stream ``vigil:sinks:dead:{vigil:alerts}:<sink>``; and their replay
(``vigil sinks --replay-dead SINK``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis

from alerts.history import as_text
from alerts.sinks.targets import Sink
from shared import keys
from shared.errors import SchemaError, SinkRejected, SinkUnavailable
from shared.redis import call
from shared.schemas import AlertEvent

READ_COUNT = 100


@dataclass(frozen=True)
class DeadLetter:
    dead_id: bytes
    entry_id: str
    """The event's entry in ``vigil:alerts``."""
    event: str
    """The event's JSON, as recorded."""
    error: str
    attempts: int


class DeadLetters:
    def __init__(self, client: redis.Redis, sink: str, *, maxlen: int) -> None:
        self._client = client
        self.key = keys.sink_dead_key(sink)
        self._group = keys.sink_group(sink)
        self._maxlen = maxlen

    def add_and_ack(self, entry_id: bytes, event_json: str, *, error: str, attempts: int) -> None:
        """Dead-letter an entry and acknowledge it in the sink's group, in one transaction."""

        def run() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.xadd(
                self.key,
                {
                    "entry": entry_id,
                    "event": event_json,
                    "error": error,
                    "attempts": attempts,
                    "dead_ms": int(time.time() * 1000),
                },
                maxlen=self._maxlen,
                approximate=True,
            )
            pipe.xack(keys.ALERTS, self._group, entry_id)
            pipe.execute()

        call(run)

    def entries(self, after: bytes | str = "-") -> list[DeadLetter]:
        start = after if after == "-" else f"({as_text(after)}"
        raw = call(lambda: self._client.xrange(self.key, min=start, count=READ_COUNT))
        return [
            DeadLetter(
                dead_id,
                as_text(fields.get(b"entry", b"")),
                as_text(fields.get(b"event", b"")),
                as_text(fields.get(b"error", b"")),
                int(fields.get(b"attempts", 0)),
            )
            for dead_id, fields in raw
        ]

    def remove(self, dead_id: bytes) -> None:
        call(lambda: self._client.xdel(self.key, dead_id))


@dataclass
class ReplayReport:
    delivered: int = 0
    still_dead: list[tuple[str, str]] = field(default_factory=list)
    """(entry id, error) of the letters kept."""
    stopped: str | None = None
    """Why the replay stopped early (the receiver is unavailable), if it did."""


REPLAY_RETRY_S = 0.2


def replay_dead(sink: Sink, letters: DeadLetters, *, patience_s: float = 10.0) -> ReplayReport:
    """Deliver each dead letter, oldest first: a delivered one is removed, a refused one is kept.
    A failure worth retrying (the receiver is down, a broker connection still opening) is retried
    until ``patience_s`` after the start; after that the replay stops there."""
    report = ReplayReport()
    give_up = time.monotonic() + patience_s
    after: bytes | str = "-"
    while batch := letters.entries(after):
        for letter in batch:
            after = letter.dead_id
            try:
                _deliver_patiently(sink, AlertEvent.from_json(letter.event), give_up)
            except SchemaError as error:
                report.still_dead.append((letter.entry_id, f"not an event: {error.reason}"))
                continue
            except SinkRejected as error:
                report.still_dead.append((letter.entry_id, error.reason))
                continue
            except SinkUnavailable as error:
                report.stopped = error.reason
                return report
            letters.remove(letter.dead_id)
            report.delivered += 1
    return report


def _deliver_patiently(sink: Sink, event: AlertEvent, give_up: float) -> None:
    while True:
        try:
            sink.deliver(event)
            return
        except SinkUnavailable:
            if time.monotonic() >= give_up:
                raise
        time.sleep(REPLAY_RETRY_S)
