"""Subscribing to alert events: the Python client behind ``vigil subscribe``.

>>> from alerts.subscriber import AlertSubscriber
>>> with AlertSubscriber(["tcp://alerts-host:5556"], cameras=["lobby"], labels=["pistol"]) as alerts:
...     for event in alerts.events():
...         print(event.kind, event.camera, event.label, event.score, event.box)

With ``history`` (a Redis client) and ``since_s``, recorded events of the last ``since_s`` seconds
come first; the client also replays the history after every reconnection (the service restarted),
so nothing is missed. Events are de-duplicated by ``event_id``, which is deterministic.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

import redis
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from alerts.history import history_since
from shared.errors import EndpointError, SchemaError
from shared.schemas import AlertEvent

RECONNECT_MARGIN_S = 10.0


@dataclass(frozen=True)
class ClientCurve:
    """CURVE credentials of a subscriber: its own key pair and the server's public key."""

    client_secret_key_file: str
    server_public_key_file: str


class AlertSubscriber:
    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        cameras: Sequence[str] = (),
        labels: Sequence[str] = (),
        history: redis.Redis | None = None,
        since_s: float | None = None,
        curve: ClientCurve | None = None,
        remember: int = 100_000,
    ) -> None:
        self._labels = set(labels)
        self._cameras = set(cameras)
        self._history = history
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._remember = remember
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            public, secret = zmq.auth.load_certificate(curve.client_secret_key_file)
            server_public, _ = zmq.auth.load_certificate(curve.server_public_key_file)
            self._socket.curve_publickey, self._socket.curve_secretkey = public, secret
            self._socket.curve_serverkey = server_public
        for prefix in [f"alert.{camera}." for camera in cameras] or ["alert."]:
            self._socket.setsockopt(zmq.SUBSCRIBE, prefix.encode())
        self._monitor = self._socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        for endpoint in endpoints:
            try:
                self._socket.connect(endpoint)
            except zmq.ZMQError as error:
                self.close()
                raise EndpointError(f"alerts endpoint {endpoint!r}: cannot connect ({error})") from None
        self._endpoint_count = len(endpoints)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._connections = 0
        self._last_ts_ns = time.time_ns() - int((since_s or 0) * 1e9)
        self._pending: list[AlertEvent] = list(self._replay()) if since_s else []

    def events(self, timeout_s: float | None = None) -> Iterator[AlertEvent]:
        """Events as they come; stops after ``timeout_s`` without one (None: never)."""
        while True:
            while self._pending:
                yield self._pending.pop(0)
            ready = dict(self._poller.poll(None if timeout_s is None else int(timeout_s * 1000)))
            if not ready:
                return
            if self._monitor in ready:
                recv_monitor_message(self._monitor)
                self._connections += 1
                if self._connections > self._endpoint_count:  # a re-connection: the service restarted
                    self._pending += self._replay(margin_s=RECONNECT_MARGIN_S)
            if self._socket in ready:
                _topic, body = self._socket.recv_multipart()
                try:
                    event = AlertEvent.from_json(body)
                except SchemaError:
                    continue
                if self._accept(event):
                    self._pending.append(event)

    def _replay(self, margin_s: float = 0.0) -> list[AlertEvent]:
        if self._history is None:
            return []
        since_ms = int(self._last_ts_ns / 1e6 - margin_s * 1000)
        return [event for event in history_since(self._history, since_ms) if self._accept(event)]

    def _accept(self, event: AlertEvent) -> bool:
        if event.event_id in self._seen:
            return False
        if (self._cameras and event.camera not in self._cameras) or (
            self._labels and event.label not in self._labels
        ):
            return False
        self._seen[event.event_id] = None
        if len(self._seen) > self._remember:
            self._seen.popitem(last=False)
        self._last_ts_ns = max(self._last_ts_ns, event.ts_ns)
        return True

    def close(self) -> None:
        self._socket.disable_monitor()
        self._monitor.close(linger=0)
        self._socket.close(linger=0)
        self._context.term()

    def __enter__(self) -> AlertSubscriber:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
