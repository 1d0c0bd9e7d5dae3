"""Who may use the console: the password login, signed session cookies with their CSRF token, the
integrators' API tokens and the login rate limit. Pure logic; :mod:`web.guard` applies it to requests.

A session cookie is ``<payload>.<signature>``: the payload (base64url JSON: user, expiry, CSRF
token) signed with HMAC-SHA256 under the console's session key, so it cannot be forged or extended
and needs no server-side storage (replicas that share ``session_secret_file`` share sessions).
API tokens are random and high-entropy, so their SHA-256 is a safe form to keep at rest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.errors import ConfigError
from web.passwords import BadHash, parse_hash, verify_password

SESSION_COOKIE = "vigil_session"
CSRF_HEADER = "x-csrf-token"
TOKEN_PREFIX = "vgl_"
_TOKEN_LINE_PARTS = 2


@dataclass(frozen=True)
class Session:
    user: str
    expires_s: float
    csrf: str


class Sessions:
    """Issues and checks signed session cookies."""

    def __init__(self, key: bytes, *, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ConfigError("web: the session key must be at least 16 bytes")
        self._key, self._ttl_s, self._clock = key, ttl_s, clock

    def issue(self, user: str) -> tuple[str, Session]:
        session = Session(user=user, expires_s=self._clock() + self._ttl_s, csrf=secrets.token_urlsafe(24))
        payload = _b64(json.dumps({"u": session.user, "e": session.expires_s, "c": session.csrf}).encode())
        return f"{payload}.{self._sign(payload)}", session

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None if it is missing, forged, malformed or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(user=str(fields["u"]), expires_s=float(fields["e"]), csrf=str(fields["c"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires_s > self._clock() else None

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def session_key(path: str | None) -> bytes:
    """The key in ``path`` (its bytes; made with 32 random bytes if the file does not exist yet), or
    a random key for this process when ``path`` is None."""
    if path is None:
        return secrets.token_bytes(32)
    file = Path(path)
    try:
        if not file.exists():
            write_private(file, secrets.token_hex(32) + "\n")
        return file.read_bytes().strip()
    except OSError as error:
        raise ConfigError(f"web.session_secret_file {path}: {error.strerror}") from None


def write_private(file: Path, text: str, *, append: bool = False) -> None:
    """Write (or append) ``text`` to a file only its owner may read."""
    file.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    with os.fdopen(os.open(file, flags, 0o600), "w", encoding="utf-8") as out:
        out.write(text)


class ApiTokens:
    """The integrators' tokens: ``NAME SHA256`` lines of ``web.api_tokens_file``."""

    def __init__(self, digests: dict[str, str]) -> None:
        self._by_digest = {digest: name for name, digest in digests.items()}

    @classmethod
    def load(cls, path: str | None) -> ApiTokens:
        if path is None or not Path(path).exists():
            return cls({})
        digests = {}
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"web.api_tokens_file {path}: cannot read ({error})") from None
        for number, line in enumerate(lines, 1):
            if line.strip() and not line.startswith("#"):
                parts = line.split()
                if len(parts) != _TOKEN_LINE_PARTS or len(parts[1]) != 64:
                    raise ConfigError(f"web.api_tokens_file {path}:{number}: not 'NAME SHA256'")
                digests[parts[0]] = parts[1]
        return cls(digests)

    def __bool__(self) -> bool:
        return bool(self._by_digest)

    def name_of(self, token: str) -> str | None:
        """The name of the token's holder, or None for an unknown token."""
        digest = _token_digest(token)
        for known, name in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return name
        return None


def add_token(path: str, name: str) -> str:
    """Make a token for ``name``, keep its hash in ``path`` and return the token (shown once)."""
    if not name or any(c.isspace() for c in name):
        raise ConfigError("a token name is one word")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    write_private(Path(path), f"{name} {_token_digest(token)}\n", append=True)
    return token


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Login:
    """The one console user and its password hash."""

    def __init__(self, user: str, password_hash: str | None) -> None:
        if password_hash is not None:
            try:
                parse_hash(password_hash)
            except BadHash as error:
                raise ConfigError(f"web.password_hash: {error}") from None
        self.user, self._hash = user, password_hash

    @property
    def enabled(self) -> bool:
        return self._hash is not None

    def check(self, user: str, password: str) -> bool:
        """Constant work whether or not the user name is right (no user enumeration by timing)."""
        if self._hash is None:
            return False
        good_password = verify_password(password, self._hash)
        return hmac.compare_digest(user.encode(), self.user.encode()) and good_password


def read_password_hash(value: str | None, path: str | None) -> str | None:
    """The configured hash, from the config (or ``VIGIL_WEB_PASSWORD_HASH``) or its file."""
    if value is not None or path is None:
        return value
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"web.password_hash_file {path}: {error.strerror}") from None


class LoginLimiter:
    """At most ``attempts`` failed logins per client address per ``window_s``; then refused until
    the oldest failure leaves the window. Bounded: past ``MAX_CLIENTS`` addresses, idle ones go."""

    MAX_CLIENTS = 10_000

    def __init__(
        self, *, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._attempts, self._window_s, self._clock = attempts, window_s, clock
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def retry_after_s(self, client: str) -> float:
        """0 if ``client`` may try now, else the seconds until it may."""
        with self._lock:
            recent = self._recent(client)
            if len(recent) < self._attempts:
                return 0.0
            return max(0.0, recent[0] + self._window_s - self._clock())

    def failed(self, client: str) -> None:
        with self._lock:
            if len(self._failures) >= self.MAX_CLIENTS:
                for known in [c for c in self._failures if not self._recent(c)]:
                    del self._failures[known]
            self._failures.setdefault(client, []).append(self._clock())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> list[float]:
        since = self._clock() - self._window_s
        recent = [t for t in self._failures.get(client, []) if t > since]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return recent
