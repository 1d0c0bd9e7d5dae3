"""One bad detections entry never stops a camera's alerts: a clock far ahead, a poison entry."""

from __future__ import annotations

import time

import redis

from alerts.service import AlertService
from alerts.subscriber import AlertSubscriber
from shared import keys
from shared.schemas import AlertEvent
from tests.alerts.conftest import alerts_config, cameras, endpoint, message, push
from tests.alerts.test_service import collect, feed_track
from tests.support.services import running, wait_for

TEN_YEARS_NS = 10 * 365 * 86_400 * 10**9


def malformed(service: AlertService, reason: str) -> float:
    value = service.metrics.registry.get_sample_value("vigil_alerts_malformed_total", {"reason": reason})
    return value or 0.0


def test_an_entry_from_the_future_is_counted_and_alerts_go_on(redis_client: redis.Redis) -> None:
    """Before: one entry with ts_ns 10 years ahead and a huge seq stopped every alert of the camera
    (later frames looked older than it) until the alerts service was restarted."""
    bind, connect_to = endpoint()
    service = AlertService(alerts_config(bind), cameras("cam"), client=redis_client, forward_grace_s=0.2)
    with running(service), AlertSubscriber([connect_to]) as subscriber:
        assert wait_for(lambda: service.ready, 10)
        time.sleep(0.5)
        push(redis_client, message("cam", 2**62, (1, 0.9), ts_ns=time.time_ns() + TEN_YEARS_NS))
        assert wait_for(lambda: malformed(service, "clock_skew") == 1, 10)
        feed_track(redis_client, "cam", track=7, frames=3)
        (started,) = collect(subscriber, 1, timeout_s=10)
    assert (started.kind, started.track_id) == ("started", 7)


def test_an_entry_the_rules_cannot_evaluate_is_stepped_over_not_retried(
    redis_client: redis.Redis, monkeypatch
) -> None:
    """A poison entry that makes rule evaluation raise is counted and its cursor moves past it, so
    a restarted service does not replay it and die again (a crash loop)."""
    bind, connect_to = endpoint()
    service = AlertService(alerts_config(bind), cameras("cam"), client=redis_client, forward_grace_s=0.2)
    process = service.engine.process

    def poisoned(detections):  # the engine fails on this one entry only (seq 666)
        if detections.seq == 666:
            raise ArithmeticError("poison")
        return process(detections)

    monkeypatch.setattr(service.engine, "process", poisoned)
    with running(service), AlertSubscriber([connect_to]) as subscriber:
        assert wait_for(lambda: service.ready, 10)
        time.sleep(0.5)
        push(redis_client, message("cam", 666, (1, 0.9)))
        assert wait_for(lambda: malformed(service, "unprocessable") == 1, 10)
        feed_track(redis_client, "cam", track=7, frames=3, start_seq=667)
        (started,) = collect(subscriber, 1, timeout_s=10)
        assert started.track_id == 7
        assert wait_for(lambda: redis_client.get(keys.alerts_cursor_key("cam")) is not None, 5)
    poison_id = redis_client.xrange(keys.detections_stream("cam"), count=1)[0][0]
    assert redis_client.get(keys.alerts_cursor_key("cam")) > poison_id, "the saved cursor is past the poison"


def test_catching_up_on_a_backlog_does_not_end_alerts_early(redis_client: redis.Redis) -> None:
    """After an outage the backlog is read in batches; a wall-clock sweep between batches used to
    end tracks still seen in the next batch, and their next sightings were suppressed as cooldown
    or started again. While catching up, time is the entries' time."""
    now_ns = time.time_ns()
    entries = 1200  # more than two reads (500 entries each): the track is seen in every one
    for seq in range(entries):
        push(redis_client, message("cam", seq, (7, 0.9), ts_ns=now_ns - (entries - seq) * 50_000_000))
    bind, _connect_to = endpoint()
    service = AlertService(alerts_config(bind), cameras("cam"), client=redis_client, forward_grace_s=0.2)
    with running(service):
        assert wait_for(lambda: redis_client.xlen("vigil:alerts") >= 2, 20)
        time.sleep(1.0)
    recorded = [AlertEvent.decode(fields) for _id, fields in redis_client.xrange("vigil:alerts")]
    assert [e.kind for e in recorded] == ["started", "ended"]
    assert recorded[1].seq == entries - 1, "ended after the last sighting, not between two reads"
