"""MQTT: events on ``<prefix>/<camera>/<label>/<kind>`` (QoS 1), and for Home Assistant a retained
last alert per camera, a snapshot JPEG, a binary sensor's state per camera and rule, and the
discovery messages that make those sensors appear without configuration (docs/sinks.md).

An event counts as delivered when the broker has acknowledged (PUBACK) every message it makes.
Messages not acknowledged in ``ack_timeout_s`` stay with the client, which sends them again (DUP)
after a reconnect; the retry waits for those rather than publishing the event a second time. A
receiver may still see an event twice (the broker had it, the PUBACK was lost): its ``event_id``
is the same both times.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Callable, Sequence

import paho.mqtt.client as mqtt

from shared.config import MqttSinkConfig
from shared.errors import SinkUnavailable
from shared.logs import LIMITED_INTERVAL_S, log_limited
from shared.schemas import AlertEvent

log = logging.getLogger(__name__)
ONLINE, OFFLINE = "online", "offline"
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
"""paho's own reconnect delays (it doubles them, from the least to the largest)."""
_NOT_A_LEVEL = re.compile(r"[/#+\x00]")
_NOT_AN_ID = re.compile(r"[^A-Za-z0-9_-]")

SnapshotLoader = Callable[[AlertEvent], bytes | None]


def level(text: str) -> str:
    """``text`` as one topic level: no ``/``, ``+``, ``#``."""
    return _NOT_A_LEVEL.sub("_", text) or "_"


class Topics:
    """Every topic of one sink."""

    def __init__(self, prefix: str, discovery_prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        self.discovery_prefix = discovery_prefix.rstrip("/")

    @property
    def availability(self) -> str:
        return f"{self.prefix}/available"

    def event(self, event: AlertEvent) -> str:
        return f"{self.prefix}/{event.camera}/{level(event.label)}/{event.kind}"

    def last_alert(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/last_alert"

    def snapshot(self, camera: str, label: str) -> str:
        return f"{self.prefix}/{camera}/{level(label)}/snapshot"

    def state(self, camera: str, rule: str) -> str:
        return f"{self.prefix}/{camera}/{level(rule)}/state"

    def discovery(self, camera: str, rule: str) -> str:
        return f"{self.discovery_prefix}/binary_sensor/{sensor_id(camera, rule)}/config"


def sensor_id(camera: str, rule: str) -> str:
    return _NOT_AN_ID.sub("_", f"vigil_{camera}_{rule}")


def discovery_config(topics: Topics, camera: str, rule: str) -> dict[str, object]:
    """Home Assistant's MQTT discovery payload of the binary sensor of ``rule`` on ``camera``."""
    return {
        "name": f"{rule} detected",
        "unique_id": sensor_id(camera, rule),
        "device_class": "safety",
        "state_topic": topics.state(camera, rule),
        "payload_on": "ON",
        "payload_off": "OFF",
        "json_attributes_topic": topics.last_alert(camera),
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": {
            "identifiers": [f"vigil_{_NOT_AN_ID.sub('_', camera)}"],
            "name": f"Vigil {camera}",
            "manufacturer": "Vigil",
            "model": "camera",
        },
    }


class MqttSink:
    def __init__(
        self,
        name: str,
        config: MqttSinkConfig,
        *,
        password: str | None,
        sensors: Sequence[tuple[str, str]],
        snapshots: SnapshotLoader,
    ) -> None:
        """``sensors``: the (camera, rule) pairs announced to Home Assistant."""
        self.name = name
        self.config = config
        self.topics = Topics(config.topic_prefix, config.discovery_prefix)
        self._sensors = tuple(sensors)
        self._snapshots = snapshots
        self._open_alerts: dict[tuple[str, str], set[tuple[int | None, int]]] = {}
        """(camera, rule) → (track, first seen) of the alerts started and not ended: the sensor is
        ON while any is open."""
        self._unacked: tuple[str, list[mqtt.MQTTMessageInfo]] | None = None
        """The last event's messages the broker has not acknowledged yet (the client resends them)."""
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=config.client_id or f"vigil-{name}",
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        if config.username:
            client.username_pw_set(config.username, password)
        if config.tls is not None:
            client.tls_set(
                ca_certs=config.tls.ca_file, certfile=config.tls.cert_file, keyfile=config.tls.key_file
            )
        client.will_set(self.topics.availability, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client

    def open(self) -> None:
        """Connect in the background; deliveries fail as unavailable until the broker accepts."""
        self._client.connect_async(
            self.config.host, self.config.broker_port, keepalive=self.config.keepalive_s
        )
        self._client.loop_start()

    def close(self, *, farewell: bool = True) -> None:
        """Disconnect; ``farewell`` first says ``offline`` (not when the sink moved to another
        replica, whose ``online`` may be there already)."""
        if farewell and self._client.is_connected():
            info = self._client.publish(self.topics.availability, OFFLINE, qos=1, retain=True)
            _acked(info, 1.0)
        self._client.disconnect()
        self._client.loop_stop()

    def deliver(self, event: AlertEvent) -> None:
        if not self._client.is_connected():
            raise SinkUnavailable(self.name, "not connected to the broker")
        if self._unacked is not None and self._unacked[0] == event.event_id:
            infos = self._unacked[1]  # a retry: wait for the messages the client still holds
        else:
            infos = [
                self._client.publish(topic, payload, qos=1, retain=retain)
                for topic, payload, retain in self.messages(event)
            ]
        self._unacked = None
        deadline = time.monotonic() + self.config.ack_timeout_s
        for info in infos:
            acked = _acked(info, deadline - time.monotonic())
            if acked is None:  # never queued (the connection dropped just then): publish again
                raise SinkUnavailable(self.name, "the broker connection dropped")
            if not acked:
                self._unacked = (event.event_id, infos)
                raise SinkUnavailable(self.name, f"no PUBACK within {self.config.ack_timeout_s:g} s")

    def messages(self, event: AlertEvent) -> list[tuple[str, bytes | str, bool]]:
        """(topic, payload, retained) of each message ``event`` makes."""
        payload = event.to_json()
        out: list[tuple[str, bytes | str, bool]] = [(self.topics.event(event), payload, False)]
        opened = self._open_alerts.setdefault((event.camera, event.rule), set())
        alert = (event.track_id, event.first_seen_ns)  # the same in an alert's started and ended
        if event.kind == "started":
            opened.add(alert)
            out.append((self.topics.last_alert(event.camera), payload, True))
            jpeg = self._snapshots(event) if self.config.snapshots else None
            if jpeg:
                out.append((self.topics.snapshot(event.camera, event.label), jpeg, True))
        else:
            opened.discard(alert)
        out.append((self.topics.state(event.camera, event.rule), "ON" if opened else "OFF", True))
        return out

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason: mqtt.ReasonCode,
        _properties: object,
    ) -> None:
        if reason.is_failure:
            log_limited(
                log,
                f"mqtt:{self.name}",
                LIMITED_INTERVAL_S,
                "sink %s: the broker refused: %s",
                self.name,
                reason,
            )
            return
        log.info("sink %s: connected to the broker", self.name)
        sock = client.socket()
        if sock is not None:  # an event's messages are small writes: no Nagle delay between them
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        if self.config.discovery:
            for camera, rule in self._sensors:
                config = json.dumps(discovery_config(self.topics, camera, rule), separators=(",", ":"))
                client.publish(self.topics.discovery(camera, rule), config, qos=1, retain=True)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: object,
        reason: mqtt.ReasonCode,
        _properties: object,
    ) -> None:
        log_limited(
            log,
            f"mqtt:{self.name}",
            LIMITED_INTERVAL_S,
            "sink %s: broker connection lost (%s)",
            self.name,
            reason,
        )


def _acked(info: mqtt.MQTTMessageInfo, timeout_s: float) -> bool | None:
    """True once the broker acknowledged, False if not within ``timeout_s``, None if never queued."""
    try:
        info.wait_for_publish(max(0.0, timeout_s))
        return info.is_published()
    except (RuntimeError, ValueError):
        return None
