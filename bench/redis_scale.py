"""Frames per second through Redis, one node against a 3-master Redis Cluster, same machine, same run.

Each configuration gets the same load: ``--clients`` producer processes XADD frames of
``--frame-kb`` random bytes (a 640 px JPEG's size, as incompressible) to ``--cameras`` streams
(``vigil:{camera}:frames``, ``MAXLEN ~ 100`` as ingest does), pipelined one frame per camera a
round, as fast as they can; as many consumer processes read the streams with the detector's own
reader (:func:`shared.streams.read_streams`: one blocking XREAD on a node; on the cluster one XREAD
per slot, pipelined by node). Reported: frames per second read (each frame written and read once),
CPU-ms per 1000 frames of the Redis servers and of the clients, the cores each kept busy (what
bounds the run: a machine whose cores are all busy measures itself, not Redis), and cluster / node
ratios. Runs
alternate between the two (``--repeats``) so that a noisy minute on a shared machine spreads over
both. The cluster has no replicas here: replication would double its servers' work on the same
cores and measure that instead of the sharding.

    .venv/bin/python bench/redis_scale.py                        # about 1.5 minutes
    .venv/bin/python bench/redis_scale.py --cameras 60 --clients 3 --seconds 15 --json /tmp/scale.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cpu import cpu_seconds, describe_cpu, interleaved
from shared import keys
from shared.config import RedisConfig
from shared.redis import connect, free_port, wait_until_answering
from shared.streams import read_streams
from tests.support.redis_cluster import LocalRedisCluster

STREAM_MAXLEN = 100
READ_COUNT = 16


@dataclass(frozen=True)
class Run:
    target: str
    frames_per_s: float
    server_cpu_ms_per_1000: float
    client_cpu_ms_per_1000: float
    server_cores_busy: float
    client_cores_busy: float


def produce(url: str, cameras: list[str], frame_kb: int, stop_at: float) -> None:
    client = connect(RedisConfig(url=url))
    frame = {"data": os.urandom(frame_kb * 1024)}
    streams = [keys.frames_stream(camera) for camera in cameras]
    while time.monotonic() < stop_at:
        pipe = client.pipeline(transaction=False)
        for stream in streams:
            pipe.xadd(stream, frame, maxlen=STREAM_MAXLEN, approximate=True)
        pipe.execute()


def consume(
    url: str, cameras: list[str], start_at: float, stop_at: float, counted: multiprocessing.Queue
) -> None:
    """Read from now on; count the frames read between ``start_at`` and ``stop_at``."""
    client = connect(RedisConfig(url=url))
    cursors: dict[str, bytes | str] = dict.fromkeys(
        map(keys.frames_stream, cameras), f"{int(time.time() * 1000)}-0"
    )
    frames = 0
    while (now := time.monotonic()) < stop_at:
        for stream, entries in read_streams(client, cursors, count=READ_COUNT, block_ms=100):
            cursors[stream] = entries[-1][0]
            frames += len(entries) if now >= start_at else 0
    counted.put(frames)


def measure(url: str, server_pids: list[int], args: argparse.Namespace, target: str) -> Run:
    cameras = [f"cam-{n}" for n in range(args.cameras)]
    shares = [cameras[i :: args.clients] for i in range(args.clients)]
    context = multiprocessing.get_context("spawn")
    counted = context.Queue()
    warmup_s = 2.0
    start_at = time.monotonic() + 3.0 + warmup_s  # the spawned processes import first
    stop_at = start_at + args.seconds
    clients = [context.Process(target=produce, args=(url, share, args.frame_kb, stop_at)) for share in shares]
    clients += [
        context.Process(target=consume, args=(url, share, start_at, stop_at, counted)) for share in shares
    ]
    for process in clients:
        process.start()
    time.sleep(max(0.0, start_at - time.monotonic()))
    server_before = sum(cpu_seconds(pid) for pid in server_pids)
    client_before = sum(cpu_seconds(process.pid) for process in clients)
    time.sleep(max(0.0, stop_at - time.monotonic()))
    server_s = sum(cpu_seconds(pid) for pid in server_pids) - server_before
    client_s = sum(cpu_seconds(process.pid) for process in clients) - client_before
    frames = sum(counted.get(timeout=60) for _ in shares)
    for process in clients:
        process.join(timeout=30)
    per_1000 = 1000 / max(1, frames)
    return Run(target, frames / args.seconds, 1000 * server_s * per_1000, 1000 * client_s * per_1000,
               server_s / args.seconds, client_s / args.seconds)  # fmt: skip


class SingleNode:
    """A plain redis-server, the same binary and settings as the cluster's nodes."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="vigil-bench-redis-")
        server = shutil.which("redis-server") or "redis-server"
        self.process = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.folder, "--logfile", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        wait_until_answering(self.process, self.url, timeout_s=10)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def summarize(runs: list[Run], args: argparse.Namespace) -> dict[str, object]:
    def median(target: str, field: str) -> float:
        return statistics.median(getattr(run, field) for run in runs if run.target == target)

    fields = ("frames_per_s", "server_cpu_ms_per_1000", "client_cpu_ms_per_1000", "server_cores_busy",
              "client_cores_busy")  # fmt: skip
    table = {target: {field: median(target, field) for field in fields} for target in ("node", "cluster")}
    print(f"\n{describe_cpu()}, {os.cpu_count()} cores; {args.cameras} cameras, {args.frame_kb} KB frames, "
          f"{args.clients} producers + {args.clients} consumers, {args.seconds:g} s x {args.repeats} "
          "(medians)")  # fmt: skip
    print(f"{'':10s} {'frames/s':>9s} {'MB/s':>7s} {'server CPU-ms/1000':>19s} {'client CPU-ms/1000':>19s} "
          f"{'server cores busy':>18s} {'client cores busy':>18s}")  # fmt: skip
    for target, row in table.items():
        print(f"{target:10s} {row['frames_per_s']:9.0f} {row['frames_per_s'] * args.frame_kb / 1024:7.1f} "
              f"{row['server_cpu_ms_per_1000']:19.1f} {row['client_cpu_ms_per_1000']:19.1f} "
              f"{row['server_cores_busy']:18.2f} {row['client_cores_busy']:18.2f}")  # fmt: skip
    ratios = {field: table["cluster"][field] / table["node"][field] for field in fields}
    r = ratios
    print(f"{'cluster/node':10s} {r['frames_per_s']:8.2f}x {'':7s} {r['server_cpu_ms_per_1000']:18.2f}x "
          f"{r['client_cpu_ms_per_1000']:18.2f}x {r['server_cores_busy']:17.2f}x "
          f"{r['client_cores_busy']:17.2f}x")  # fmt: skip
    return {"cpu": describe_cpu(), "cores": os.cpu_count(), "args": vars(args), "medians": table,
            "ratios": ratios, "runs": [asdict(run) for run in runs]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=30)
    parser.add_argument("--frame-kb", type=int, default=50)
    parser.add_argument("--clients", type=int, default=2, help="producer processes (and as many consumers)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    node, cluster = SingleNode(), LocalRedisCluster(replicas=0).start()
    targets = {
        "node": (node.url, [node.process.pid]),
        "cluster": (cluster.url, [n.process.pid for n in cluster.nodes.values()]),
    }
    runs = []
    try:
        for repeat, target in interleaved(list(targets), args.repeats):
            url, pids = targets[target]
            connect(RedisConfig(url=url)).flushdb()
            runs.append(measure(url, pids, args, target))
            print(f"repeat {repeat + 1} {target:8s} {runs[-1].frames_per_s:8.0f} frames/s", flush=True)
    finally:
        node.close()
        cluster.close()
    result = summarize(runs, args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
