"""ZeroMQ PUB delivery of alert events: multipart ``[topic, JSON]``, optional CURVE.

Topics are ``alert.{camera}.{label}`` so a subscriber filters by prefix (``alert.lobby.``). A PUB
socket never blocks the service: each subscriber has a send queue of ``send_hwm`` messages, and a
slow or stuck subscriber loses messages beyond it (it can catch up from the history).
With CURVE, the socket has a server key pair and only clients whose public key is in
``authorized_keys_dir`` complete the handshake: anyone else receives nothing.
"""

from __future__ import annotations

import logging

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from shared.config import CurveConfig
from shared.errors import EndpointError
from shared.schemas import AlertEvent

log = logging.getLogger(__name__)


def topic(event: AlertEvent) -> bytes:
    return f"alert.{event.camera}.{event.label}".encode()


class AlertPublisher:
    def __init__(self, endpoint: str, *, send_hwm: int, curve: CurveConfig | None = None) -> None:
        self._context = zmq.Context()
        self._authenticator: ThreadAuthenticator | None = None
        self.socket = self._context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, send_hwm)
        self.socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            self._authenticator = ThreadAuthenticator(self._context)
            self._authenticator.start()
            self._authenticator.configure_curve(domain="*", location=curve.authorized_keys_dir)
            public, secret = zmq.auth.load_certificate(curve.server_secret_key_file)
            if secret is None:
                raise ValueError(f"{curve.server_secret_key_file}: not a secret key file")
            self.socket.curve_server = True
            self.socket.curve_publickey = public
            self.socket.curve_secretkey = secret
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError as error:
            self.close()
            raise EndpointError(f"alerts.publish_endpoint {endpoint!r}: cannot bind ({error})") from None
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("publishing alerts on %s%s", self.endpoint, " (CURVE)" if curve else "")

    def send(self, event: AlertEvent) -> bool:
        """Queue the event for every subscriber; False if ZeroMQ could not take it."""
        try:
            self.socket.send_multipart([topic(event), event.to_json().encode()], flags=zmq.NOBLOCK)
        except zmq.ZMQError as error:
            log.warning("event %s not sent: %s", event.event_id, error)
            return False
        return True

    def close(self) -> None:
        self.socket.close(linger=0)
        if self._authenticator is not None:
            self._authenticator.stop()
        self._context.term()
