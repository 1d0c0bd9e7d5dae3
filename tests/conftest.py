"""Fixtures shared by every test: a real Redis, private Redis servers that tests may kill, and a
private PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shared.config import RedisConfig
from shared.redis import EmbeddedRedis, answers, connect
from tests.support.postgres import PrivatePostgres, missing_reason
from tests.support.redis_cluster import LocalRedisCluster

DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/15"


@pytest.fixture(scope="session", autouse=True)
def engine_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exported models (``detector/engines``) and the auto engine choice go to a folder of this test
    session (``$XDG_CACHE_HOME``, inherited by the services tests start), not to ``~/.cache``."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``$VIGIL_TEST_REDIS_URL`` (default: local Redis, database 15); an embedded server if none."""
    url = os.environ.get("VIGIL_TEST_REDIS_URL", DEFAULT_TEST_REDIS)
    if answers(url):
        yield url
        return
    with EmbeddedRedis() as embedded:
        yield embedded.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on an emptied database (emptied again afterwards)."""
    client = connect(RedisConfig(url=redis_url))
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def private_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of this test's own, which the test may stop and start (a Redis restart)."""
    server = EmbeddedRedis().start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A real Redis Cluster (3 masters, 3 replicas, a password) on loopback, for the whole session."""
    cluster = LocalRedisCluster()
    try:
        yield cluster.start()
    finally:
        cluster.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL cluster for the session (skipped where the server is not installed);
    ``postgres.new_database()`` gives each test an empty database."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PrivatePostgres()
    try:
        yield server.start()
    finally:
        server.close()
