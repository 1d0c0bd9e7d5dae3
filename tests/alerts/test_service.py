"""The alerts service with a real Redis and real ZeroMQ sockets."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
import zmq
import zmq.auth

from alerts.service import AlertService
from alerts.subscriber import AlertSubscriber, ClientCurve
from shared import keys
from shared.config import CurveConfig, RedisConfig
from shared.redis import EmbeddedRedis, connect
from shared.schemas import AlertEvent
from tests.alerts.conftest import alerts_config, cameras, endpoint, message, push
from tests.support.services import running, wait_for


def collect(subscriber: AlertSubscriber, count: int, timeout_s: float = 10) -> list[AlertEvent]:
    """Up to ``count`` events, waiting at most ``timeout_s`` in all."""
    events: list[AlertEvent] = []
    deadline = time.monotonic() + timeout_s
    while len(events) < count and time.monotonic() < deadline:
        for event in subscriber.events(timeout_s=0.2):
            events.append(event)
            if len(events) >= count:
                break
    return events


def feed_track(client: redis.Redis, camera: str, track: int, frames: int, start_seq: int = 0) -> None:
    for seq in range(start_seq, start_seq + frames):
        push(client, message(camera, seq, (track, 0.9)))
        time.sleep(0.02)


def test_started_with_box_then_ended_on_a_sub_socket(redis_client: redis.Redis) -> None:
    bind, connect_to = endpoint()
    service = AlertService(alerts_config(bind), cameras("cam"), client=redis_client, forward_grace_s=0.2)
    with running(service), AlertSubscriber([connect_to]) as subscriber:
        assert wait_for(lambda: service.ready, 10)
        time.sleep(0.5)  # the subscription reaches the publisher
        feed_track(redis_client, "cam", track=7, frames=5)
        started, ended = collect(subscriber, 2, timeout_s=15)
    assert (started.kind, started.camera, started.label, started.track_id, started.rule) == (
        "started", "cam", "pistol", 7, "gun")  # fmt: skip
    assert started.seq == 2, "fires at the 3rd qualifying frame (3 of 5)"
    assert started.box == (0.0, 100.0, 40.0, 160.0)
    assert started.box_norm == pytest.approx((0.0, 100 / 480, 40 / 640, 160 / 480))
    assert (started.frame_width, started.frame_height) == (640, 480), "the Detections message's size"
    assert started.snapshot == "gone", "no frame in the frame stream for this synthetic detection"
    assert ended.kind == "ended" and ended.track_id == 7
    recorded = [AlertEvent.decode(f) for _i, f in redis_client.xrange(keys.ALERTS)]
    assert [e.event_id for e in recorded] == [started.event_id, ended.event_id]
    published = {"rule": "gun", "label": "pistol", "kind": "started"}
    assert service.metrics.registry.get_sample_value("vigil_alerts_published_total", published) == 1


def test_snapshot_of_the_frame_with_the_box(redis_client: redis.Redis) -> None:
    from tests.detector.conftest import jpeg_frame
    from tests.detector.conftest import push as push_frame

    bind, _ = endpoint()
    service = AlertService(alerts_config(bind), cameras("cam"), client=redis_client)
    for seq in range(5):
        push_frame(redis_client, jpeg_frame("cam", seq, 640, 480))
    with running(service):
        assert wait_for(lambda: service.ready, 10)
        feed_track(redis_client, "cam", track=1, frames=3)
        assert wait_for(lambda: redis_client.xlen(keys.ALERTS) == 1, 10)
    event = AlertEvent.decode(redis_client.xrange(keys.ALERTS)[0][1])
    assert event.snapshot == keys.snapshot_key(event.camera, event.event_id)
    jpeg = redis_client.get(event.snapshot)
    assert jpeg[:2] == b"\xff\xd8" and redis_client.ttl(event.snapshot) > 0


def make_keys(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    authorized = folder / "authorized"
    authorized.mkdir()
    server_public, server_secret = zmq.auth.create_certificates(folder, "server")
    client_public, client_secret = zmq.auth.create_certificates(folder, "client")
    _, intruder_secret = zmq.auth.create_certificates(folder, "intruder")
    Path(client_public).rename(authorized / "client.key")
    return {"server_public": Path(server_public), "server_secret": Path(server_secret),
            "client_secret": Path(client_secret), "intruder_secret": Path(intruder_secret),
            "authorized": authorized}  # fmt: skip


def test_curve_only_authorised_subscribers_receive(redis_client: redis.Redis, tmp_path: Path) -> None:
    k = make_keys(tmp_path / "keys")
    bind, connect_to = endpoint()
    curve = CurveConfig(
        server_secret_key_file=str(k["server_secret"]), authorized_keys_dir=str(k["authorized"])
    )
    service = AlertService(alerts_config(bind, curve=curve), cameras("cam"), client=redis_client,
                           forward_grace_s=0.2)  # fmt: skip
    good = AlertSubscriber([connect_to], curve=ClientCurve(str(k["client_secret"]), str(k["server_public"])))
    intruder = AlertSubscriber(
        [connect_to], curve=ClientCurve(str(k["intruder_secret"]), str(k["server_public"]))
    )
    plain = AlertSubscriber([connect_to])
    try:
        with running(service):
            assert wait_for(lambda: service.ready, 10)
            time.sleep(0.5)
            for track in (1, 2, 3):
                feed_track(redis_client, "cam", track=track, frames=3, start_seq=10 * track)
            received = collect(good, 3, timeout_s=10)
            assert len({e.event_id for e in received if e.kind == "started"}) == 3
            assert list(intruder.events(timeout_s=1)) == []
            assert list(plain.events(timeout_s=0.5)) == []
    finally:
        for subscriber in (good, intruder, plain):
            subscriber.close()


def test_a_stuck_subscriber_never_blocks_and_a_late_one_replays(redis_client: redis.Redis) -> None:
    bind, connect_to = endpoint()
    # the forwarder sends at most 500 events a round: with a queue of 600 per subscriber a reading
    # subscriber never loses one, while a stuck one loses everything past its queue
    # 50 tracks per camera start at once: above the default storm cap, which is not under test here
    service = AlertService(alerts_config(bind, send_hwm=600, storm_max_started=50),
                           cameras(*(f"c{i}" for i in range(20))), client=redis_client,
                           forward_grace_s=0.2)  # fmt: skip
    context = zmq.Context()
    stuck = context.socket(zmq.SUB)
    stuck.setsockopt(zmq.RCVHWM, 1)
    stuck.setsockopt(zmq.RCVBUF, 4096)
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    stuck.connect(connect_to)
    try:
        with running(service), AlertSubscriber([connect_to]) as live:
            assert wait_for(lambda: service.ready, 10)
            time.sleep(0.5)
            for seq in range(3):  # 20 cameras x 50 tracks: 1000 started events at once
                for camera in range(20):
                    push(redis_client, message(f"c{camera}", seq, *((t, 0.9) for t in range(50))))
            assert wait_for(lambda: redis_client.xlen(keys.ALERTS) >= 1000, 30)
            events = collect(live, 1000, timeout_s=30)
            assert len({e.event_id for e in events}) == 1000, "the live subscriber got every event"
            history = connect(
                RedisConfig(url=redis_client.connection_pool.connection_kwargs and _url(redis_client))
            )
            late = AlertSubscriber([connect_to], history=history, since_s=600, cameras=["c3"])
            replayed = collect(late, 50, timeout_s=5)
            late.close()
        assert {e.camera for e in replayed} == {"c3"} and len(replayed) == 50
    finally:
        stuck.close(linger=0)
        context.term()


def _url(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


def test_malformed_entries_and_a_redis_restart(private_redis: EmbeddedRedis) -> None:
    client = connect(RedisConfig(url=private_redis.url, socket_timeout_s=1, connect_timeout_s=0.5))
    bind, _ = endpoint()
    service = AlertService(alerts_config(bind), cameras("cam"), client=client)
    with running(service):
        assert wait_for(lambda: service.ready, 10)
        client.xadd(keys.detections_stream("cam"), {"v": "1", "camera": "cam"})
        client.xadd(keys.detections_stream("cam"), {"garbage": "yes"})
        client.xadd(keys.detections_stream("cam"), message("other", 0, (1, 0.9)).encode())  # not its camera
        feed_track(client, "cam", track=1, frames=3)
        assert wait_for(lambda: client.xlen(keys.ALERTS) == 1, 10)
        malformed = lambda reason: service.metrics.registry.get_sample_value(  # noqa: E731
            "vigil_alerts_malformed_total", {"reason": reason}
        )
        assert malformed("missing_field") == 2 and malformed("wrong_camera") == 1
        private_redis.stop(kill=True)
        time.sleep(1.5)
        private_redis.start()
        assert wait_for(lambda: service.ready, 15)
        feed_track(client, "cam", track=2, frames=3, start_seq=100)

        def recorded() -> set[tuple[str, int]]:
            return {
                (e.kind, e.track_id) for e in (AlertEvent.decode(f) for _i, f in client.xrange(keys.ALERTS))
            }

        # track 1 ended while Redis was away: that event waited and is recorded now, as is track 2
        assert wait_for(lambda: {("ended", 1), ("started", 2)} <= recorded(), 10), recorded()


def test_a_cursor_older_than_the_stream_is_counted_as_trimmed(redis_client: redis.Redis) -> None:
    """A camera taken over after the detector trimmed past its saved cursor: its alerts in the
    trimmed part are lost, which is counted and logged, not silent."""
    redis_client.xadd(keys.detections_stream("late"), message("late", 0, (1, 0.9)).encode(), id="5000-0")
    newest = redis_client.xadd(keys.detections_stream("fine"), message("fine", 0, (1, 0.9)).encode())
    redis_client.set(keys.alerts_cursor_key("late"), "1000-0")  # entries 1000..5000 are gone
    redis_client.set(keys.alerts_cursor_key("fine"), newest)
    service = AlertService(alerts_config(endpoint()[0]), cameras("late", "fine"), client=redis_client)
    sample = service.metrics.registry.get_sample_value
    with running(service):
        assert wait_for(lambda: sample("vigil_alerts_cameras_owned") == 2, 10)
    assert sample("vigil_alerts_detections_trimmed_total", {"camera": "late"}) == 1
    assert sample("vigil_alerts_detections_trimmed_total", {"camera": "fine"}) == 0
