"""ZeroMQ PUB delivery of alert events: multipart ``[topic, JSON]``, optional CURVE.

Topics are ``alert.{camera}.{label}`` so a subscriber filters by prefix (``alert.lobby.``). A PUB
socket never blocks the service: each subscriber has a send queue of ``send_hwm`` messages, and a
slow or stuck subscriber loses messages beyond it (it can catch up from the history).
With CURVE, the socket has a server key pair and only clients whose public key is in
``authorized_keys_dir`` complete the handshake: anyone else receives nothing. The folder is read
again every ``AUTHORIZED_CHECK_S`` (``vigil keys add`` / ``revoke``); when a key has gone, the
socket unbinds and binds again, so every subscriber handshakes anew and a revoked one is left out
(the others are back within a few seconds; the Python client then replays what it missed from the
history). A folder that cannot be read lets nobody in.
"""

from __future__ import annotations

import logging
import time

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from shared.config import CurveConfig
from shared.errors import ConfigError, EndpointError
from shared.schemas import AlertEvent

log = logging.getLogger(__name__)
AUTHORIZED_CHECK_S = 2.0
"""How often ``authorized_keys_dir`` is read again for added and revoked subscribers."""
REBIND_TIMEOUT_S = 5.0
"""How long binding again may find the port still in use: ZeroMQ closes the old listener on its
I/O thread, a moment after ``unbind`` returns."""


def authorized_keys(folder: str) -> frozenset[bytes]:
    """The Z85 public keys in ``folder``'s ``*.key`` files; none (nobody gets in) if it cannot be read."""
    try:
        return frozenset(zmq.auth.load_certificates(folder))
    except (OSError, ValueError) as error:
        log.error("CURVE: authorized keys not readable, no subscriber is let in: %s", error)
        return frozenset()


def topic(event: AlertEvent) -> bytes:
    return f"alert.{event.camera}.{event.label}".encode()


class AlertPublisher:
    def __init__(
        self, endpoint: str, *, send_hwm: int, curve: CurveConfig | None = None,
        authorized_check_s: float = AUTHORIZED_CHECK_S,
    ) -> None:  # fmt: skip
        self._context = zmq.Context()
        self._authenticator: ThreadAuthenticator | None = None
        self._curve = curve
        self._authorized: frozenset[bytes] = frozenset()
        self._check_s = authorized_check_s
        self._checked_at = time.monotonic()
        self.socket = self._context.socket(zmq.PUB)
        self.socket.setsockopt(zmq.SNDHWM, send_hwm)
        self.socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            try:
                public, secret = zmq.auth.load_certificate(curve.server_secret_key_file)
            except (OSError, ValueError) as error:
                self.close()
                raise ConfigError(
                    f"alerts.curve.server_secret_key_file: {error} (make the keys: vigil keys init)"
                ) from None
            if secret is None:
                self.close()
                raise ConfigError(f"alerts.curve.server_secret_key_file {curve.server_secret_key_file!r}: "
                                  "a public key file, not the secret one")  # fmt: skip
            self._authenticator = ThreadAuthenticator(self._context)
            self._authenticator.start()
            self._authenticator.configure_curve(domain="*", location=curve.authorized_keys_dir)
            self._allow(authorized_keys(curve.authorized_keys_dir))
            self.socket.curve_server = True
            self.socket.curve_publickey = public
            self.socket.curve_secretkey = secret
        try:
            self.socket.bind(endpoint)
        except zmq.ZMQError as error:
            self.close()
            raise EndpointError(f"alerts.publish_endpoint {endpoint!r}: cannot bind ({error})") from None
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        log.info("publishing alerts on %s%s", self.endpoint,
                 f" (CURVE, {len(self._authorized)} authorized subscribers)" if curve else "")  # fmt: skip

    def check_authorized(self, *, force: bool = False) -> bool:
        """Every ``authorized_check_s`` (or now, with ``force``): read ``authorized_keys_dir`` again and
        apply what changed; a removed key drops every connection so that one does not come back.
        True when the authorized keys changed."""
        if self._curve is None or self._authenticator is None:
            return False
        now = time.monotonic()
        if not force and now - self._checked_at < self._check_s:
            return False
        self._checked_at = now
        authorized = authorized_keys(self._curve.authorized_keys_dir)
        if authorized == self._authorized:
            return False
        added, revoked = authorized - self._authorized, self._authorized - authorized
        self._allow(authorized)
        log.info("CURVE: %d authorized subscribers (%d added, %d revoked)", len(authorized), len(added),
                 len(revoked))  # fmt: skip
        if revoked:  # ZeroMQ cannot drop one peer: drop them all, the authorized ones come back
            self._rebind()
        return True

    def _allow(self, authorized: frozenset[bytes]) -> None:
        """The keys the authenticator lets in. Set here rather than by ``configure_curve(location)``,
        which keeps the old keys when the folder cannot be read: a revocation must not fail open."""
        assert self._authenticator is not None
        self._authenticator.certs["*"] = dict.fromkeys(authorized, True)
        self._authorized = authorized

    def _rebind(self) -> None:
        self.socket.unbind(self.endpoint)
        deadline = time.monotonic() + REBIND_TIMEOUT_S
        while True:
            try:
                self.socket.bind(self.endpoint)
                return
            except zmq.ZMQError as error:
                if error.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                    raise EndpointError(f"alerts.publish_endpoint {self.endpoint!r}: cannot bind again after "
                                        f"a revocation ({error})") from None  # fmt: skip
                time.sleep(0.01)

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
