"""deploy/redis/users.acl with a real redis-server: each service's real Redis traffic works under its
own user, and what a user does not need is refused.

Redis starts as docker-compose.yml starts it (``deploy/redis/start.sh`` with the passwords of an
``.env`` from ``deploy/make-env.sh``, ``deploy/redis/redis.conf``). The services are the real ones:
ingest publishes frames of the bundled clip, the detector runs the shipped model on them, the alerts
service evaluates, records an event with a snapshot and forwards it over ZeroMQ. Afterwards Redis's
``ACL LOG`` holds no refusal: nothing a service does was denied.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared import keys
from shared.config import CameraConfig, DetectorConfig, IngestConfig
from shared.schemas import AlertEvent, Detections
from tests.alerts.conftest import alerts_config, endpoint, message, push
from tests.support.compose_redis import (
    MAKE_ENV,
    START,
    USERS,
    USERS_ACL,
    ComposeRedis,
    make_env,
    password_variable,
)
from tests.support.services import running, wait_for
from web.passwords import verify_password

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "samples" / "pistols.mp4"
SERVICE_USERS = ("ingest", "detector", "alerts", "sinks", "recorder", "web")


@pytest.fixture(scope="module")
def passwords(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_env(tmp_path_factory.mktemp("env") / ".env")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str]) -> Iterator[ComposeRedis]:
    with ComposeRedis(tmp_path_factory.mktemp("redis") / "data", passwords) as running_server:
        yield running_server


@pytest.fixture
def admin(server: ComposeRedis) -> Iterator[redis.Redis]:
    """The administrator (the default user), on an emptied Redis with an empty ACL log."""
    client = server.client("default")
    client.flushall()
    client.acl_log_reset()
    yield client


def test_make_env_writes_a_strong_password_per_user_once(passwords: dict[str, str], tmp_path: Path) -> None:
    passwords = dict(passwords)
    web_hash = passwords.pop("WEB_PASSWORD_HASH")
    others = {"GRAFANA_ADMIN_PASSWORD", "WEB_PASSWORD"}
    assert set(passwords) == {*(password_variable(user) for user in USERS), *others}
    assert all(len(value) == 48 and int(value, 16) >= 0 for value in passwords.values())
    assert len(set(passwords.values())) == len(passwords), "every user has a password of its own"
    assert web_hash.startswith("'scrypt$") and web_hash.endswith("'"), "quoted: compose reads $ literally"
    assert verify_password(passwords["WEB_PASSWORD"], web_hash.strip("'")), "the console's login"
    env_file = tmp_path / ".env"
    first = make_env(env_file)
    assert env_file.stat().st_mode & 0o077 == 0, "readable by its owner only"
    subprocess.run(["sh", str(MAKE_ENV), str(env_file)], check=True, capture_output=True)
    assert make_env(env_file) == first, "an existing .env is kept"


def test_start_refuses_a_missing_or_weak_password(passwords: dict[str, str], tmp_path: Path) -> None:
    def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        command = ["sh", str(START), str(USERS_ACL), str(tmp_path / "users.acl"), "true"]
        return subprocess.run(command, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True)

    assert start(passwords).returncode == 0
    rendered = (tmp_path / "users.acl").read_text()
    assert passwords["REDIS_ALERTS_PASSWORD"] in rendered and "${" not in rendered and "#" not in rendered
    assert (tmp_path / "users.acl").stat().st_mode & 0o077 == 0
    for broken in ({"REDIS_ALERTS_PASSWORD": ""}, {"REDIS_ALERTS_PASSWORD": "short"},
                   {"REDIS_ALERTS_PASSWORD": "has spaces and is long enough"}):  # fmt: skip
        result = start({**passwords, **broken})
        assert result.returncode != 0 and "REDIS_ALERTS_PASSWORD" in result.stderr, result
        assert not (tmp_path / "users.acl").exists(), "no half-written ACL file is left"


def test_without_a_password_nothing_is_allowed(server: ComposeRedis, admin: redis.Redis) -> None:
    for client in (server.client(), redis.Redis.from_url(server.url("alerts", password="x" * 48))):
        with pytest.raises(redis.AuthenticationError):
            client.ping()
        client.close()


def test_the_health_check_pings_as_the_administrator(server: ComposeRedis, passwords: dict[str, str]) -> None:
    def ping(env: dict[str, str]) -> str:
        command = ["redis-cli", "--no-auth-warning", "-p", str(server.port), "ping"]
        return subprocess.run(command, env={"PATH": "/usr/bin:/bin", **env}, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip

    assert ping({"REDISCLI_AUTH": passwords["REDIS_ADMIN_PASSWORD"]}) == "PONG"
    assert ping({}).startswith("NOAUTH"), "redis-cli exits 0 on an error reply: the check looks for PONG"


def test_each_service_does_its_work_under_its_own_user(server: ComposeRedis, admin: redis.Redis) -> None:
    from alerts.service import AlertService
    from detector.runner import DetectorRunner
    from detector.service import DetectorService
    from ingest.service import IngestService

    runner = DetectorRunner(device="cpu")  # the shipped model, loaded before the frames exist

    # ingest: three frames of a file camera, its status in the registry, leases held and given back
    camera = CameraConfig(id="cam", url=str(CLIP), fps=5, realtime=False)
    ingest = IngestConfig(instance="ingest-1", metrics_port=None, lease_ttl_s=1.0, registry_interval_s=0.2)
    IngestService(ingest, (camera,), client=server.client("ingest"), burst=True, max_frames=3).run()
    assert admin.xlen(keys.frames_stream("cam")) == 3
    assert admin.hget(keys.camera_key("cam"), "frames_published") is not None
    assert admin.smembers(keys.CAMERAS) == {b"cam"}

    # detector: the newest frame through the model, tracked, into the camera's detections stream
    detector = DetectorConfig(instance="det-1", metrics_port=None, lease_ttl_s=1.0, device="cpu",
                              max_frame_age_s=600)  # fmt: skip
    with running(DetectorService(detector, ["cam"], client=server.client("detector"), runner=runner,
                                 max_frames=1)):  # fmt: skip
        assert wait_for(lambda: admin.xlen(keys.detections_stream("cam")) == 1, 60), admin.acl_log()
    [(_id, fields)] = admin.xrange(keys.detections_stream("cam"))
    assert Detections.decode(fields).camera == "cam"
    assert admin.exists(keys.track_ids_key("cam"))

    # alerts: a pistol track in three frames that ingest published → one event, a snapshot, forwarded
    for seq in range(3):
        push(admin, message("cam", seq, (99, 0.9)))
    bind, _connect = endpoint()
    with running(AlertService(alerts_config(bind), (camera,), client=server.client("alerts"),
                              forward_grace_s=0.2)):  # fmt: skip
        assert wait_for(lambda: admin.exists(keys.ALERTS_FORWARDED), 20), admin.acl_log()
    started = AlertEvent.decode(admin.xrange(keys.ALERTS)[0][1])
    assert (started.kind, started.camera, started.seq) == ("started", "cam", 2)
    assert started.snapshot == keys.snapshot_key("cam", started.event_id) and admin.exists(started.snapshot)
    assert admin.exists(keys.alert_recorded_key(started.event_id), keys.alerts_cursor_key("cam")) == 2

    # every lease given back on the way out, and Redis refused nothing on the way
    assert admin.keys(keys.lease_key("*", "*")) == [] and admin.keys("vigil:members:*") == []
    assert admin.acl_log() == []


def test_sinks_deliver_under_their_own_user(server: ComposeRedis, admin: redis.Redis, tmp_path: Path) -> None:
    """A webhook (one event refused: a dead letter, then replayed) and an MQTT sink with a snapshot,
    the lag metrics read from the consumer groups; Redis refuses nothing."""
    from alerts.sinks.deadletter import DeadLetters, replay_dead
    from alerts.sinks.service import SinkService
    from alerts.sinks.targets import open_sink
    from shared.config import MqttSinkConfig, SinksConfig, WebhookSinkConfig
    from tests.alerts.sinks.conftest import SECRET, event, record
    from tests.support.mosquitto import Mosquitto
    from tests.support.webhook_receiver import Receiver, Script

    admin.set(keys.snapshot_key("cam1", "e0"), b"jpeg")
    events = [event(0, snapshot=keys.snapshot_key("cam1", "e0")), event(1), event(2)]
    record(admin, *events)
    receiver, broker = Receiver(Script(reject={events[1].event_id})), Mosquitto(tmp_path).start()
    hook = WebhookSinkConfig(name="hook", type="webhook", url=receiver.url, secret=SECRET,
                             start_from="oldest")  # fmt: skip
    mqtt = MqttSinkConfig(name="ha", type="mqtt", host="127.0.0.1", port=broker.port, start_from="oldest")
    config = SinksConfig(instance="sinks-1", metrics_port=None, lease_ttl_s=1.0, targets=(hook, mqtt))
    try:
        with running(SinkService(config, client=server.client("sinks"), sensors=[("cam1", "gun")])) as sinks:
            delivered = lambda name: sinks.metrics.delivered.labels(name)._value.get()  # noqa: E731
            assert wait_for(lambda: delivered("hook") == 2 and delivered("ha") == 3, 20), admin.acl_log()
            assert wait_for(lambda: sinks.metrics.lag_events.labels("ha")._value.get() == 0, 5)
        report = replay_dead(open_sink(hook), DeadLetters(server.client("sinks"), "hook", maxlen=100))
        assert report.delivered == 1 and set(receiver.accepted()) == {e.event_id for e in events}
    finally:
        receiver.close()
        broker.stop()
    assert admin.keys(keys.lease_key("*", "*")) == [] and admin.acl_log() == []


def test_the_recorder_records_under_its_own_user(
    server: ComposeRedis, admin: redis.Redis, tmp_path: Path
) -> None:
    """A clip with boxes (frames and detections read in one XREAD) and its snapshot; nothing refused."""
    from shared.eventstore import ClipState, EventStore
    from tests.recorder.conftest import (
        S,
        jpeg,
        picture,
        publish_frames,
        record_alert,
        record_config,
        run_burst,
    )

    t0 = time.time_ns() - 60 * S
    publish_frames(admin, "cam", first_seq=0, start_ns=t0, count=40, boxes=True)
    snapshot = jpeg(picture(1))
    record_alert(admin, "cam", started_ns=t0 + 4 * S, ended_ns=t0 + 5 * S, event_id="ev1", snapshot=snapshot)
    store = EventStore.open(f"sqlite:///{tmp_path}/events.db")
    run_burst(record_config(tmp_path, draw_boxes=True), server.client("recorder"), store, "cam")
    record = store.get("ev1")
    store.close()
    assert record is not None and record.clip_state is ClipState.DONE and record.snapshot_path is not None
    assert admin.xpending(keys.ALERTS, keys.RECORD_GROUP)["pending"] == 0
    assert admin.keys(keys.lease_key("*", "*")) == [] and admin.acl_log() == []


def test_the_console_reads_under_its_own_user(server: ComposeRedis, admin: redis.Redis) -> None:
    """What ``vigil web`` sends Redis: the registry (a vanished camera pruned), a camera's live view
    (newest frame and detections, then following both), the alert feed, a snapshot."""
    from shared.registry import CameraStatus, read_statuses, write_status
    from shared.streams import read_streams
    from tests.web.conftest import alert, publish_alert, publish_detections, publish_frame
    from web.alertfeed import AlertFeed
    from web.live import CameraFeed
    from web.metrics import WebMetrics

    write_status(admin, CameraStatus(camera="cam1", state="streaming", owner="i", updated_ns=1))
    admin.sadd(keys.CAMERAS, "gone")
    publish_detections(admin, publish_frame(admin, 1))
    publish_alert(admin, alert())
    admin.set(keys.snapshot_key("cam1", "e1"), b"jpeg")
    web = server.client("web")
    assert [s.camera for s in read_statuses(web)] == ["cam1"] and admin.smembers(keys.CAMERAS) == {b"cam1"}
    metrics = WebMetrics()
    feed = CameraFeed(web, "cam1", wait_ms=0, jpeg_quality=80, metrics=metrics)
    cursors = feed._start()
    publish_detections(admin, publish_frame(admin, 2))
    feed._read(cursors)
    assert metrics.frames_annotated.labels("cam1")._value.get() == 2
    alerts = AlertFeed(web, metrics=metrics)
    assert [entry.event.event_id for entry in alerts.replay(5)] == [alert().event_id]
    assert read_streams(web, {keys.ALERTS: "0-0"}, count=1, block_ms=1)
    assert web.get(keys.snapshot_key("cam1", "e1")) == b"jpeg"
    assert admin.acl_log() == []


FORBIDDEN: dict[str, list[tuple[str, ...]]] = {
    "ingest": [
        ("XADD", keys.detections_stream("cam"), "*", "k", "v"),  # another service's stream
        ("GET", keys.lease_key("detect", "cam")),  # another group's lease
        ("DEL", keys.ALERTS),
        ("XRANGE", keys.ALERTS, "-", "+"),
        ("HGETALL", keys.camera_key("cam")),  # its own key, not its command
    ],
    "detector": [
        ("XADD", keys.frames_stream("cam"), "*", "k", "v"),  # frames are read-only to it
        ("XTRIM", keys.frames_stream("cam"), "MAXLEN", "0"),
        ("DEL", keys.detections_stream("cam")),
        ("SET", keys.alerts_cursor_key("cam"), "0-0"),
        ("SET", keys.lease_key("ingest", "cam"), "me"),
    ],
    "alerts": [
        ("XADD", keys.detections_stream("cam"), "*", "k", "v"),  # read-only to it
        ("XADD", keys.frames_stream("cam"), "*", "k", "v"),
        ("DEL", keys.ALERTS),
        ("XTRIM", keys.ALERTS, "MAXLEN", "0"),
        ("SET", keys.lease_key("detect", "cam"), "me"),
        ("GET", keys.snapshot_key("cam", "x")),
    ],
    "web": [
        ("XADD", keys.frames_stream("cam"), "*", "k", "v"),  # it only reads the pipeline's streams
        ("XADD", keys.ALERTS, "*", "k", "v"),
        ("XTRIM", keys.detections_stream("cam"), "MAXLEN", "0"),
        ("HSET", keys.camera_key("cam"), "state", "x"),
        ("SET", keys.snapshot_key("cam", "x"), "jpeg"),
        ("DEL", keys.CAMERAS),
        ("XGROUP", "CREATE", keys.ALERTS, "g", "$"),
    ],
    "sinks": [
        ("XADD", keys.ALERTS, "*", "k", "v"),  # it follows the history, never writes events
        ("XDEL", keys.ALERTS, "0-1"),
        ("XGROUP", "DESTROY", keys.ALERTS, "sink:x"),
        ("SET", keys.snapshot_key("cam", "x"), "jpeg"),
        ("XREAD", "STREAMS", keys.detections_stream("cam"), "0"),
        ("SET", keys.lease_key("alerts", "cam"), "me"),
    ],
    "recorder": [
        ("XADD", keys.ALERTS, "*", "k", "v"),  # it follows the history, never writes events
        ("XGROUP", "DESTROY", keys.ALERTS, keys.RECORD_GROUP),
        ("XADD", keys.frames_stream("cam"), "*", "k", "v"),  # frames and detections are read-only to it
        ("XTRIM", keys.frames_stream("cam"), "MAXLEN", "0"),
        ("XADD", keys.detections_stream("cam"), "*", "k", "v"),
        ("SET", keys.snapshot_key("cam", "x"), "jpeg"),
        ("DEL", keys.snapshot_key("cam", "x")),
        ("SET", keys.lease_key("alerts", "cam"), "me"),
    ],
}
EVERYONE = [("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("KEYS", "*"), ("ACL", "LIST"),
            ("SHUTDOWN", "NOSAVE"), ("SCRIPT", "FLUSH"), ("EVAL", "return 1", "0"),
            ("SCAN", "0"), ("MONITOR",), ("SUBSCRIBE", "x"), ("BGREWRITEAOF",)]  # fmt: skip


@pytest.mark.parametrize("user", SERVICE_USERS)
def test_what_a_service_does_not_need_is_refused(server: ComposeRedis, admin: redis.Redis, user: str) -> None:
    admin.xadd(keys.frames_stream("cam"), {"k": "v"})
    admin.xadd(keys.ALERTS, {"k": "v"})
    client = server.client(user)
    for command in [*EVERYONE, *FORBIDDEN[user]]:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    # SCRIPT LOAD and EVALSHA are allowed (the lease scripts), but a script runs with its caller's
    # permissions: it can neither name a key the user may not touch nor run a command it may not
    refused = "no permissions|can't run this command|can't access"
    if user == "web":  # no lease, so no script at all
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.script_load("return 1")
        return
    flush = client.script_load("return redis.call('FLUSHALL')")
    with pytest.raises(redis.ResponseError, match=refused):
        client.evalsha(flush, 0)
    delete = client.script_load("return redis.call('DEL', KEYS[1])")
    for key in (keys.ALERTS, keys.frames_stream("cam")):
        with pytest.raises(redis.ResponseError, match=refused):
            client.evalsha(delete, 1, key)
    assert admin.xlen(keys.frames_stream("cam")) == 1 and admin.xlen(keys.ALERTS) == 1, "nothing was lost"
    assert admin.acl_log(), "and Redis logged the refusals"
