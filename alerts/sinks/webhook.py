"""Webhooks: each event POSTed as JSON, signed, with its event id as the ``Idempotency-Key``.

Headers (docs/sinks.md has the receiver's 10-line check)::

    Content-Type: application/json
    Idempotency-Key: <event_id>          the same on every retry: de-duplicate on it
    X-Vigil-Timestamp: <unix seconds>    when this attempt was signed
    X-Vigil-Signature: sha256=<hex>      HMAC-SHA256(secret, "<timestamp>." + body)

2xx acknowledges. 408, 429, 5xx, timeouts and connection failures raise :class:`SinkUnavailable`
(retried, honouring ``Retry-After``); any other status raises :class:`SinkRejected` (dead-lettered).
Redirects are not followed: a 3xx is a rejection (the URL is wrong).
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ssl
import time
from urllib.parse import urlsplit

from shared.errors import SinkRejected, SinkUnavailable
from shared.schemas import AlertEvent

SIGNATURE_HEADER, TIMESTAMP_HEADER = "X-Vigil-Signature", "X-Vigil-Timestamp"
RETRY_STATUSES = frozenset({408, 429})
MAX_RETRY_AFTER_S = 3600.0


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Vigil-Signature`` value: ``sha256=`` and the hex HMAC of ``timestamp.body``."""
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(
    secret: bytes,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    max_skew_s: float = 300,
    now: float | None = None,
) -> bool:
    """What a receiver checks: the signature matches and the timestamp is recent (no replays)."""
    try:
        fresh = abs((time.time() if now is None else now) - int(timestamp)) <= max_skew_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` of seconds (an HTTP date is ignored), capped."""
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value))) if value else None
    except ValueError:
        return None


class WebhookSink:
    def __init__(
        self, name: str, *, url: str, secret: bytes, timeout_s: float, ca_file: str | None = None
    ) -> None:
        self.name = name
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._secret = secret
        self._timeout_s = timeout_s
        self._tls = ssl.create_default_context(cafile=ca_file) if self._https else None

    def open(self) -> None:
        """Nothing to open: each delivery is one connection."""

    def close(self, *, farewell: bool = True) -> None:
        """Nothing held between deliveries."""

    def deliver(self, event: AlertEvent) -> None:
        body = event.to_json().encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": event.event_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            "User-Agent": "vigil-sinks",
        }
        status, retry_after = self._post(body, headers)
        if 200 <= status < 300:
            return
        if status in RETRY_STATUSES or status >= 500:
            raise SinkUnavailable(self.name, f"HTTP {status}", retry_after_s=retry_after_s(retry_after))
        raise SinkRejected(self.name, f"HTTP {status}")

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str | None]:
        if self._tls is not None:
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout_s, context=self._tls
            )
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
        try:
            connection.request("POST", self._path, body=body, headers=headers)
            reply = connection.getresponse()
            reply.read(64 * 1024)  # drain a little so the receiver is not reset mid-reply
            return reply.status, reply.getheader("Retry-After")
        except TimeoutError:
            raise SinkUnavailable(self.name, f"no reply within {self._timeout_s:g} s") from None
        except (OSError, http.client.HTTPException) as error:  # refused, reset, DNS, TLS, a garbled reply
            raise SinkUnavailable(self.name, f"{type(error).__name__}") from None
        finally:
            connection.close()
