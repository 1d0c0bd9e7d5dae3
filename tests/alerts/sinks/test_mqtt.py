"""MQTT sinks against a real Mosquitto broker: topics, QoS 1, Home Assistant discovery, a restart."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import redis
from prometheus_client import generate_latest

from alerts.sinks.service import SinkService
from shared import keys
from shared.config import MqttSinkConfig, MqttTlsConfig, SinksConfig
from tests.alerts.sinks.conftest import event, record
from tests.support.mosquitto import Mosquitto
from tests.support.services import running, wait_for

PASSWORD = "mqtt-pass-0123456789-do-not-log"


class Subscriber:
    """Everything published under ``#``, QoS 1, in a session the broker keeps across a restart."""

    def __init__(self, port: int) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id="test-subscriber", clean_session=False
        )
        self.client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(broker: Mosquitto) -> Iterator[Subscriber]:
    client = Subscriber(broker.port)
    assert wait_for(lambda: client.client.is_connected(), 5)
    time.sleep(0.1)  # the SUBACK
    yield client
    client.close()


def sinks(client: redis.Redis, broker: Mosquitto, **overrides: object) -> SinkService:
    settings: dict[str, object] = {
        "name": "ha",
        "type": "mqtt",
        "host": "127.0.0.1",
        "port": broker.port,
        "ack_timeout_s": 1.0,
        "retry_base_s": 0.1,
        "retry_cap_s": 0.5,
    }
    settings.update(overrides)
    config = SinksConfig(
        instance="sinks-1", metrics_port=None, lease_ttl_s=1.0, targets=(MqttSinkConfig(**settings),)
    )  # type: ignore[arg-type]
    return SinkService(config, client=client, sensors=[("cam1", "gun")])


def test_a_gun_event_arrives_with_qos1_discovery_state_and_snapshot(
    redis_client: redis.Redis, broker: Mosquitto, subscriber: Subscriber, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    redis_client.set(keys.snapshot_key("cam1", "e1"), b"\xff\xd8jpeg\xff\xd9")
    started = event(1, snapshot=keys.snapshot_key("cam1", "e1"))
    with running(sinks(redis_client, broker, username="vigil", password=PASSWORD)) as service:
        assert wait_for(lambda: subscriber.on("homeassistant/binary_sensor/vigil_cam1_gun/config"), 10)
        time.sleep(0.3)  # the group exists: events from now on are delivered
        record(redis_client, started)
        assert wait_for(lambda: subscriber.on("vigil/cam1/pistol/started"), 10)
        record(redis_client, event(1, kind="ended"))
        assert wait_for(
            lambda: [m.payload for m in subscriber.on("vigil/cam1/gun/state")] == [b"ON", b"OFF"], 10
        )
        assert service.metrics.delivered.labels("ha")._value.get() == 2
        text = generate_latest(service.metrics.registry).decode()
    assert PASSWORD not in text and PASSWORD not in caplog.text

    [message] = subscriber.on("vigil/cam1/pistol/started")
    assert message.qos == 1 and json.loads(message.payload)["event_id"] == started.event_id
    [discovery] = subscriber.on("homeassistant/binary_sensor/vigil_cam1_gun/config")
    config = json.loads(discovery.payload)
    assert config["state_topic"] == "vigil/cam1/gun/state" and config["unique_id"] == "vigil_cam1_gun"
    assert config["availability_topic"] == "vigil/available"
    assert subscriber.on("vigil/cam1/pistol/snapshot")[0].payload == b"\xff\xd8jpeg\xff\xd9"
    assert json.loads(subscriber.on("vigil/cam1/last_alert")[0].payload)["event_id"] == started.event_id
    assert [m.payload for m in subscriber.on("vigil/available")][-1] == b"offline", "a clean stop says so"


def test_a_broker_restart_loses_no_event(
    redis_client: redis.Redis, broker: Mosquitto, subscriber: Subscriber
) -> None:
    events = [event(n) for n in range(60)]
    with running(sinks(redis_client, broker, snapshots=False, discovery=False)) as service:
        time.sleep(0.3)
        for item in events[:20]:
            record(redis_client, item)
            time.sleep(0.01)
        broker.stop()  # mid-run: events keep being recorded while it is away
        for item in events[20:40]:
            record(redis_client, item)
            time.sleep(0.01)
        broker.start()
        for item in events[40:]:
            record(redis_client, item)
            time.sleep(0.01)

        def received() -> set[str]:
            return {json.loads(m.payload)["event_id"] for m in subscriber.on("vigil/cam1/pistol/started")}

        assert wait_for(lambda: received() == {e.event_id for e in events}, 20), len(received())
        assert wait_for(lambda: service.metrics.delivered.labels("ha")._value.get() == 60, 5)
        assert service.metrics.retried.labels("ha")._value.get() >= 1

    by_id: dict[str, set[bytes]] = {}
    for message in subscriber.on("vigil/cam1/pistol/started"):
        by_id.setdefault(json.loads(message.payload)["event_id"], set()).add(message.payload)
    assert all(len(payloads) == 1 for payloads in by_id.values()), "a duplicate is the same event"


@pytest.mark.slow  # openssl makes two RSA keys
def test_tls_and_a_password_from_a_file(
    redis_client: redis.Redis, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    broker = Mosquitto(tmp_path, tls=True, users={"vigil": PASSWORD, "reader": "reader-password"}).start()
    try:
        subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="tls-subscriber")
        subscriber.username_pw_set("reader", "reader-password")
        subscriber.tls_set(ca_certs=str(broker.ca_file))
        received: list[mqtt.MQTTMessage] = []
        subscriber.on_connect = lambda c, *_: c.subscribe("vigil/#", qos=1)
        subscriber.on_message = lambda _c, _u, message: received.append(message)
        subscriber.connect("localhost", broker.port)
        subscriber.loop_start()
        password_file = tmp_path / "mqtt-password"
        password_file.write_text(PASSWORD + "\n")
        tls = MqttTlsConfig(ca_file=str(broker.ca_file))
        with running(
            sinks(
                redis_client,
                broker,
                host="localhost",
                tls=tls,
                username="vigil",
                password_file=str(password_file),
            )
        ) as service:
            assert wait_for(lambda: any(m.topic == "vigil/available" for m in received), 10)
            time.sleep(0.3)
            record(redis_client, event(7))
            assert wait_for(lambda: any(m.topic == "vigil/cam1/pistol/started" for m in received), 10)
            text = generate_latest(service.metrics.registry).decode()
        subscriber.loop_stop()
        # the wrong password is refused: nothing is delivered, and it is not logged either
        with running(
            sinks(
                redis_client,
                broker,
                host="localhost",
                tls=tls,
                username="vigil",
                password="wrong-password-123",
                name="bad",
            )
        ) as service:
            assert wait_for(lambda: "the broker refused" in caplog.text, 10)
            assert service.metrics.delivered.labels("bad")._value.get() == 0
    finally:
        broker.stop()
    assert PASSWORD not in caplog.text and PASSWORD not in text and "wrong-password-123" not in caplog.text
