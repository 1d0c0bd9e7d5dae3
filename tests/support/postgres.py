"""A real PostgreSQL (Debian's ``postgresql``, tools/system-deps.sh) as a private cluster: ``initdb``
in a temporary folder, ``pg_ctl`` on a free loopback port, trust authentication for loopback only.

PostgreSQL refuses to run as root: as root the cluster belongs to, and runs as, the ``postgres``
system user (``runuser``). Each test gets a database of its own (:meth:`PrivatePostgres.new_database`).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from shared.redis import free_port

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)
"""The newest installed server's binaries (Debian installs each major version in its own folder)."""
RUN_AS = "postgres"


def missing_reason() -> str | None:
    """Why a private cluster cannot start here (None: it can)."""
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        return "PostgreSQL server binaries not installed (apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL will not run as root"
    return None


class PrivatePostgres:
    """A cluster of this test session's own; ``url`` is its ``postgres`` database."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="vigil-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._names = itertools.count()

    def _command(self, *args: str) -> list[str]:
        return ["runuser", "-u", RUN_AS, "--", *args] if os.geteuid() == 0 else list(args)

    def start(self) -> PrivatePostgres:
        assert PG_BIN is not None
        if os.geteuid() == 0:
            shutil.chown(self.folder, RUN_AS)
        subprocess.run(
            self._command(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                          "--no-sync", "-E", "UTF8"),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            self._command(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-t", "60",
                          "-l", str(self.folder / "log"), "start"),
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"vigil_test_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:  # fmt: skip
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        assert PG_BIN is not None
        if self.data.exists():
            subprocess.run(
                self._command(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                capture_output=True, timeout=60,
            )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)
