"""Webhook sinks against a real HTTP receiver that fails, times out, refuses, then accepts."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
import redis
import yaml
from prometheus_client import generate_latest

from alerts.sinks.metrics import SinksMetrics
from alerts.sinks.service import SinkService
from alerts.sinks.targets import open_sink
from alerts.sinks.webhook import verify
from alerts.sinks.worker import SinkWorker
from shared import keys
from shared.config import SinksConfig, WebhookSinkConfig
from tests.alerts.sinks.conftest import SECRET, event, record
from tests.support.services import running, wait_for
from tests.support.webhook_receiver import Receiver, Script


def webhook(url: str, **overrides: object) -> WebhookSinkConfig:
    settings: dict[str, object] = {
        "name": "hook",
        "type": "webhook",
        "url": url,
        "secret": SECRET,
        "timeout_s": 0.5,
        "retry_base_s": 0.05,
        "retry_cap_s": 0.2,
        "start_from": "oldest",
    }
    settings.update(overrides)
    return WebhookSinkConfig(**settings)  # type: ignore[arg-type]


def service(client: redis.Redis, *targets: WebhookSinkConfig) -> SinkService:
    config = SinksConfig(instance="sinks-1", metrics_port=None, lease_ttl_s=1.0, targets=targets)
    return SinkService(config, client=client)


def test_every_event_arrives_once_by_id_signed_through_failures_and_a_timeout(
    redis_client: redis.Redis, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script = Script(fail_first=3, timeouts=1, delay_s=0.8)
    events = [event(n) for n in range(20)]
    record(redis_client, *events[:10])
    caplog.set_level(logging.DEBUG)
    with running(service(redis_client, webhook(receiver.url))) as sinks:
        record(redis_client, *events[10:])
        assert wait_for(lambda: len(receiver.accepted()) == 20, 20), len(receiver.accepted())
        assert wait_for(lambda: sinks.metrics.delivered.labels("hook")._value.get() == 20, 5)
        text = generate_latest(sinks.metrics.registry).decode()

    accepted = receiver.accepted()
    assert set(accepted) == {e.event_id for e in events}
    # duplicates only where the sink could not know: the request that timed out was retried
    assert sum(len(requests) for requests in accepted.values()) <= 21
    for event_id, requests in accepted.items():
        for request in requests:
            assert request.key == event_id, "Idempotency-Key is the event id, on every retry"
            assert verify(SECRET.encode(), request.timestamp, request.body, request.signature)
            assert not verify(b"another secret", request.timestamp, request.body, request.signature)
    assert [r.status for r in receiver.requests[:3]] == [503, 503, 503]
    # in order: the first acknowledged requests carry the oldest events
    assert next(r.key for r in receiver.requests if r.status == 200) == events[0].event_id

    assert 'vigil_sinks_delivered_total{sink="hook"} 20.0' in text
    assert 'vigil_sinks_retried_total{sink="hook"} 4.0' in text
    assert 'vigil_sinks_lag_events{sink="hook"}' in text
    assert SECRET not in text and SECRET not in caplog.text
    assert "HTTP 503" in caplog.text and receiver.url not in caplog.text


def test_a_400_is_dead_lettered_and_replay_delivers_it(
    redis_client: redis.Redis,
    redis_url: str,
    receiver: Receiver,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vigil.cli import main

    events = [event(n) for n in range(3)]
    refused = events[1].event_id
    receiver.script = Script(reject={refused})
    record(redis_client, *events)
    with running(service(redis_client, webhook(receiver.url))) as sinks:
        assert wait_for(lambda: len(receiver.accepted()) == 2, 10)
        assert wait_for(lambda: redis_client.xlen(keys.sink_dead_key("hook")) == 1, 5)
        assert sinks.metrics.dead_lettered.labels("hook", "rejected")._value.get() == 1
    [(_dead_id, fields)] = redis_client.xrange(keys.sink_dead_key("hook"))
    assert fields[b"error"] == b"HTTP 400"
    assert fields[b"attempts"] == b"1" and refused.encode() in fields[b"event"]
    # nothing left pending: the 400 was acknowledged with its dead letter
    assert redis_client.xpending(keys.ALERTS, keys.sink_group("hook"))["pending"] == 0

    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(SECRET + "\n")
    config = tmp_path / "vigil.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "redis": {"url": redis_url},
                "sinks": {
                    "targets": [
                        {
                            "name": "hook",
                            "type": "webhook",
                            "url": receiver.url,
                            "secret_file": str(secret_file),
                        }
                    ]
                },
            }
        )
    )
    assert main(["sinks", "-c", str(config), "--replay-dead", "hook"]) == 0
    assert "1 re-delivered, 0 kept" in capsys.readouterr().out
    assert set(receiver.accepted()) == {e.event_id for e in events}
    assert redis_client.xlen(keys.sink_dead_key("hook")) == 0


def test_retries_stop_at_max_age_with_the_last_error(redis_client: redis.Redis, receiver: Receiver) -> None:
    receiver.script = Script(fail_first=1_000)
    with running(service(redis_client, webhook(receiver.url, max_age_s=1.0))) as sinks:
        assert wait_for(lambda: "hook" in sinks.workers, 5)
        record(redis_client, event(1))  # its age counts from here
        assert wait_for(lambda: redis_client.xlen(keys.sink_dead_key("hook")) == 1, 10)
        assert sinks.metrics.dead_lettered.labels("hook", "expired")._value.get() == 1
    [(_id, fields)] = redis_client.xrange(keys.sink_dead_key("hook"))
    assert fields[b"error"] == b"HTTP 503" and int(fields[b"attempts"]) >= 2
    assert len(receiver.requests) == int(fields[b"attempts"])


def test_filters_leave_events_out_and_acknowledge_them(redis_client: redis.Redis, receiver: Receiver) -> None:
    wanted = event(1, camera="door")
    record(redis_client, event(2, camera="yard"), wanted, event(3, camera="door", kind="ended"))
    target = webhook(receiver.url, cameras=("door",), kinds=("started",), min_severity="warning")
    with running(service(redis_client, target)) as sinks:
        assert wait_for(lambda: sinks.metrics.filtered.labels("hook")._value.get() == 2, 10)
        assert wait_for(lambda: set(receiver.accepted()) == {wanted.event_id}, 5)


def test_replicas_share_the_sinks_and_take_over_a_stopped_one(redis_client: redis.Redis) -> None:
    receivers = {name: Receiver(Script()) for name in ("h1", "h2")}
    targets = tuple(webhook(r.url, name=name) for name, r in receivers.items())

    def replica(instance: str) -> SinkService:
        config = SinksConfig(instance=instance, metrics_port=None, lease_ttl_s=1.0, targets=targets)
        return SinkService(config, client=redis_client)

    first, second = [event(n) for n in range(10)], [event(n) for n in range(10, 20)]
    try:
        with running(replica("b")) as b:
            with running(replica("a")) as a:
                assert wait_for(lambda: len(a.active) == 1 and len(b.active) == 1, 30), "one sink each"
                record(redis_client, *first)
                assert wait_for(lambda: all(len(r.accepted()) == 10 for r in receivers.values()), 30)
            # a stopped and gave its lease back: b delivers both sinks now
            assert wait_for(lambda: len(b.active) == 2, 30)
            record(redis_client, *second)
            assert wait_for(lambda: all(len(r.accepted()) == 20 for r in receivers.values()), 30)
        for receiver in receivers.values():
            assert set(receiver.accepted()) == {e.event_id for e in first + second}
            assert len(receiver.requests) == 20, "a clean hand-over sends nothing twice"
    finally:
        for receiver in receivers.values():
            receiver.close()


def test_a_moved_sink_s_old_worker_leaves_what_it_held_to_the_new_owner(
    redis_client: redis.Redis, receiver: Receiver
) -> None:
    """The hand-over race: the old worker has read a batch (a blocked read can return one after
    the sink moved) and is mid-delivery of its first event when the sink moves. The new owner must
    not send that event again, and must deliver the rest at once, not once they idle out (30 s)."""
    gate = threading.Event()
    receiver.script = Script(gate=gate)
    target = webhook(receiver.url, timeout_s=5.0)
    events = [event(n) for n in range(5)]
    record(redis_client, *events)
    metrics = SinksMetrics()
    old = SinkWorker(open_sink(target), target, client=redis_client, consumer="old", metrics=metrics)
    new = SinkWorker(open_sink(target), target, client=redis_client, consumer="new", metrics=metrics)
    group = keys.sink_group("hook")
    old.start()
    try:
        assert wait_for(lambda: redis_client.xpending(keys.ALERTS, group)["pending"] == 5, 10)
        old.stop(handed_over=True)
        new.start()
        time.sleep(1.0)  # the new owner's first claim comes while the old worker's request waits
        gate.set()  # the old worker's request in flight is answered now
        assert old.join(10), "the old worker stops after the delivery in hand"
        assert wait_for(lambda: len(receiver.accepted()) == 5, 5), "released events go at once"
        assert wait_for(lambda: redis_client.xpending(keys.ALERTS, group)["pending"] == 0, 5)
        assert sorted(receiver.accepted()) == sorted(e.event_id for e in events)
        assert len(receiver.requests) == 5, "nothing sent twice"
    finally:
        for worker in (old, new):
            worker.stop()
            worker.join(10)


def test_lag_counts_the_events_not_yet_delivered(redis_client: redis.Redis, receiver: Receiver) -> None:
    receiver.script = Script(fail_first=1_000)
    record(redis_client, *[event(n) for n in range(5)])
    with running(service(redis_client, webhook(receiver.url))) as sinks:
        lag = sinks.metrics.lag_events.labels("hook")
        assert wait_for(lambda: lag._value.get() == 5, 10)
        assert sinks.metrics.lag_seconds.labels("hook")._value.get() > 0
        receiver.script.fail_first = 0
        assert wait_for(lambda: lag._value.get() == 0, 10)
        assert sinks.metrics.lag_seconds.labels("hook")._value.get() == 0
