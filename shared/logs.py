"""Logging set-up (plain or JSON lines) that redacts credentials everywhere, and a rate limit
for lines that outsiders can trigger at will (:data:`log_limited`).

Every formatted record passes through :func:`redact`, so a URL with a password never reaches a
log line, whether it came from our code, a library or an exception traceback.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Literal
from urllib.parse import unquote, urlsplit

_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^\s/]*)@")
_SECRET_PARAM = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|pass|token|secret|api_key|apikey|auth)=)[^&\s\"']+",
    re.IGNORECASE,
)
_known_secrets: set[str] = set()
_secrets_lock = threading.Lock()
MASK = "***"


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _password = match["userinfo"].partition(":")
    return f"{match['scheme']}{user}:{MASK}@" if sep else f"{match['scheme']}{MASK}@"


def redact(text: str) -> str:
    """Mask URL passwords, ``password=``-style parameters and every registered secret."""
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    text = _SECRET_PARAM.sub(lambda m: m["key"] + MASK, text)
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def register_url_secrets(url: str) -> None:
    """Remember the password in ``url`` (raw and percent-decoded) so it is masked wherever it
    appears later, even outside a URL (a library message, an exception)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if not password or len(password) < 3:  # masking "a" everywhere would garble every line
        return
    with _secrets_lock:
        _known_secrets.update({password, unquote(password)})


def register_secret(secret: str) -> None:
    """Remember a secret (a webhook key, a broker password) so it is masked wherever it appears."""
    if len(secret) >= 3:
        with _secrets_lock:
            _known_secrets.add(secret)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus exc when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "msg": redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: Literal["plain", "json"] = "plain") -> None:
    """Configure the root logger once for a process (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s [%(threadName)s] %(message)s")
        formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


class RateLimitedLog:
    """At most one line per ``(logger, key)`` every ``interval_s``: the lines in between are
    counted, and the next line that goes out says how many were suppressed.

    For warnings an outsider can trigger once per message (a malformed stream entry), which
    would otherwise flood the log; keys should be a bounded set (a camera id, a reason), and the
    metrics count every occurrence anyway. ``clock`` is injectable for tests.
    """

    MAX_KEYS = 10_000
    """Beyond this many keys, those whose interval has passed are forgotten."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[float, int]] = {}
        """(logger name, key) → (when the next line may go out, lines suppressed until then)."""

    def __call__(
        self, logger: logging.Logger, key: str, interval_s: float, msg: str, *args: object,
        level: int = logging.WARNING,
    ) -> bool:  # fmt: skip
        """Log ``msg % args`` unless this key logged less than ``interval_s`` ago; True if logged."""
        if not logger.isEnabledFor(level):
            return False
        now = self._clock()
        with self._lock:
            ends, suppressed = self._windows.get((logger.name, key), (now, 0))
            if now < ends:
                self._windows[(logger.name, key)] = (ends, suppressed + 1)
                return False
            if len(self._windows) >= self.MAX_KEYS:
                self._forget_expired(now)
            self._windows[(logger.name, key)] = (now + interval_s, 0)
        if suppressed:
            msg, args = f"{msg} (%d similar lines suppressed)", (*args, suppressed)
        logger.log(level, msg, *args, stacklevel=2)
        return True

    def _forget_expired(self, now: float) -> None:
        self._windows = {k: window for k, window in self._windows.items() if window[0] > now}


LIMITED_INTERVAL_S = 10.0
"""The usual interval of a rate-limited line: at most one a key every 10 s."""
log_limited = RateLimitedLog()
"""The process's limiter: ``log_limited(log, camera, LIMITED_INTERVAL_S, "camera %s: ...", camera)``."""
