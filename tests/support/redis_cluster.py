"""A real Redis Cluster on loopback for tests: 6 ``redis-server --cluster-enabled yes`` processes
(3 masters, 3 replicas; ``replicas=0`` for 3 masters alone, as bench/redis_scale.py runs it) made
into a cluster by ``redis-cli --cluster create``, with a password and a
short ``cluster-node-timeout`` so that a killed master's replica is promoted within seconds.

``cluster-require-full-coverage no``: while one shard has no master, the other shards keep serving
(what docs/scaling.md recommends for Vigil).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

import redis
from redis.crc import key_slot

from shared.redis import free_port, wait_until_answering

PASSWORD = "cluster-test-password"
NODE_TIMEOUT_MS = 1000
MASTERS = 3


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10000 higher, at most 65535) is free too."""
    while True:
        port = free_port()
        if port <= 55535 and _bindable(port + 10000):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class ClusterNodeProcess:
    port: int
    process: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD, socket_timeout=2)


@dataclass
class LocalRedisCluster:
    """Start with :meth:`start`, end with :meth:`close`; :meth:`kill` is a master's crash."""

    replicas: int = 1
    """Per master."""
    folder: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="vigil-cluster-"))
    nodes: dict[int, ClusterNodeProcess] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """A redis+cluster:// URL naming every node as a seed (a dead seed is skipped)."""
        return f"redis+cluster://:{PASSWORD}@" + ",".join(f"127.0.0.1:{port}" for port in self.nodes)

    def start(self, timeout_s: float = 30.0) -> LocalRedisCluster:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if not server or not cli:
            raise FileNotFoundError("a Redis Cluster needs redis-server and redis-cli (tools/system-deps.sh)")
        for _ in range(MASTERS * (1 + self.replicas)):
            port = free_cluster_port()
            args = [
                server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", f"{self.folder}/nodes-{port}.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--cluster-require-full-coverage", "no",
                "--requirepass", PASSWORD, "--masterauth", PASSWORD, "--save", "", "--appendonly", "no",
                "--dir", self.folder, "--logfile", f"{self.folder}/{port}.log", "--loglevel", "warning",
            ]  # fmt: skip
            process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.nodes[port] = ClusterNodeProcess(port, process)
        for port, node in self.nodes.items():
            wait_until_answering(node.process, f"redis://:{PASSWORD}@127.0.0.1:{port}/0", timeout_s=10)
        subprocess.run(
            [cli, "-a", PASSWORD, "--no-auth-warning", "--cluster", "create",
             *(f"127.0.0.1:{port}" for port in self.nodes),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=timeout_s,
        )  # fmt: skip
        self.wait_healthy(timeout_s)
        return self

    def masters(self) -> list[int]:
        """Ports of the live masters that serve slots."""
        alive = self.alive().items()
        return sorted(port for port, node in alive if node.client().info("replication")["role"] == "master")

    def alive(self) -> dict[int, ClusterNodeProcess]:
        return {port: node for port, node in self.nodes.items() if node.process.poll() is None}

    def wait_healthy(self, timeout_s: float) -> float:
        """Until every live node says ``cluster_state:ok``, 3 masters serve the slots and every
        replica is in sync with its master; the seconds it took."""
        started = time.monotonic()
        while not self._healthy():
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"redis cluster not healthy within {timeout_s} s (logs in {self.folder})")
            time.sleep(0.1)
        return time.monotonic() - started

    def wait_served(self, key: str, timeout_s: float) -> float:
        """Until the slot of ``key`` has a live master (after a failover); the seconds it took."""
        started = time.monotonic()
        slot = key_slot(key.encode())
        while self.master_of_slot(slot) is None:
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(f"slot {slot} has no master after {timeout_s} s")
            time.sleep(0.05)
        return time.monotonic() - started

    def master_of_slot(self, slot: int) -> int | None:
        """Port of the live master serving ``slot``, as the live nodes see it (None: none yet)."""
        for node in self.alive().values():
            try:
                for start, end, master, *_replicas in node.client().execute_command("CLUSTER", "SLOTS"):
                    if start <= slot <= end and master[1] in self.alive():
                        return int(master[1])
            except redis.RedisError:
                continue
            return None
        return None

    def wait_replicated(self, master: int, timeout_s: float = 5.0) -> None:
        """Until ``master``'s replica has acknowledged every write the master had made when asked."""
        target = int(self.nodes[master].client().info("replication")["master_repl_offset"])
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.nodes[master].client().info("replication")
            replicas = [value for name, value in info.items() if name.startswith("slave")]
            offsets = [int(replica["offset"]) for replica in replicas if isinstance(replica, dict)]
            if offsets and max(offsets) >= target:
                return
            assert time.monotonic() < deadline, f"master {master}'s replica did not catch up"
            time.sleep(0.02)

    def kill(self, port: int) -> None:
        """``kill -9`` one node."""
        node = self.nodes[port]
        node.process.kill()
        node.process.wait(timeout=10)

    def close(self) -> None:
        for node in self.nodes.values():
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def flush(self) -> None:
        for port in self.masters():
            self.nodes[port].client().flushall()

    def _healthy(self) -> bool:
        try:
            alive = self.alive()
            if any(node.client().cluster("info")["cluster_state"] != "ok" for node in alive.values()):
                return False
            masters = self.masters()
            replicas = {
                port: node.client().info("replication") for port, node in alive.items() if port not in masters
            }
            synced = [info for info in replicas.values() if info.get("master_link_status") == "up"]
            return len(masters) == MASTERS and len(synced) == len(alive) - MASTERS
        except redis.RedisError:
            return False
