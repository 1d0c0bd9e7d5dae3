"""What every request handler needs, built once from the config: the Redis client, the live hub,
the alert feed, the login, sessions, API tokens and the rate limiter."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from shared.config import LOOPBACK_HOSTS, WebConfig
from shared.errors import ConfigError, StoreUnavailable
from shared.eventstore import EventStore
from shared.redis import RedisClient, call
from web.alertfeed import AlertFeed
from web.auth import ApiTokens, Login, LoginLimiter, Sessions, read_password_hash, session_key
from web.live import LiveHub
from web.metrics import WebMetrics

log = logging.getLogger(__name__)


@dataclass
class Console:
    config: WebConfig
    client: RedisClient
    metrics: WebMetrics
    hub: LiveHub
    feed: AlertFeed
    login: Login
    sessions: Sessions
    tokens: ApiTokens
    limiter: LoginLimiter
    store: EventStore
    clips_dir: Path
    """Where the recorder keeps clips and snapshots (``record.clips_dir``): the paths in the store are
    relative to it."""
    open_csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    """Without a login (loopback only), writes still carry this token: another web site the operator
    visits cannot send it."""

    @classmethod
    def build(
        cls,
        config: WebConfig,
        *,
        client: RedisClient,
        store: EventStore,
        clips_dir: Path,
        metrics: WebMetrics | None = None,
    ) -> Console:
        metrics = metrics or WebMetrics()
        login = Login(
            config.user,
            read_password_hash(
                config.password_hash.get_secret_value() if config.password_hash else None,
                config.password_hash_file,
            ),
        )
        console = cls(
            config=config,
            client=client,
            metrics=metrics,
            hub=LiveHub(
                client, wait_ms=config.detections_wait_ms, jpeg_quality=config.jpeg_quality, metrics=metrics
            ),
            feed=AlertFeed(client, metrics=metrics),
            login=login,
            sessions=Sessions(session_key(config.session_secret_file), ttl_s=config.session_ttl_s),
            tokens=ApiTokens.load(config.api_tokens_file),
            limiter=LoginLimiter(attempts=config.login_attempts, window_s=config.login_window_s),
            store=store,
            clips_dir=clips_dir,
        )
        if not console.auth_enabled and config.host not in LOOPBACK_HOSTS:
            raise ConfigError(
                f"web.host {config.host}: not loopback, and no password or API token to log in with"
            )
        if not console.auth_enabled:
            log.warning(
                "web: no password_hash or API tokens: anyone on this host can use the console "
                "(it listens on %s only)",
                config.host,
            )
        return console

    def redis_answers(self) -> bool:
        try:
            return bool(call(self.client.ping))
        except StoreUnavailable:
            return False

    @property
    def auth_enabled(self) -> bool:
        return self.login.enabled or bool(self.tokens)
