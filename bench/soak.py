"""Soak: the whole pipeline for ``--minutes``, watching for leaks and creeping lag.

Runs `vigil alerts`, `vigil detect` and `vigil ingest` as real processes (the chaos tests' helper,
``tests/chaos/pipeline.py``: the same config, metrics endpoints on) on a private embedded Redis,
with ``--cameras`` copies of the bundled clip looping at 5 fps, plus a ZeroMQ subscriber that
keeps every event. Every ``--interval-s`` it samples:

* each process's RSS, open file descriptors and threads (``/proc``; the redis-server too);
* Redis ``used_memory``;
* the detector's queue lag (capture → inference start, the ``queue_wait`` of every Detections
  entry of the interval: p50 and p99) and the frames it processed per second;
* the services' /metrics endpoints are scraped too, as Prometheus would.

It prints a row per sample and then the growth between the baseline, the first sample after the
warm-up (minute 5, or a sixth of a shorter run), and the last sample, against the goals: RSS growth
< 5 % for every process, file descriptors and threads flat, lag flat (the median p50 of the last
third of the samples within 25 % or 20 ms of the first third after the warm-up). ``--plot`` writes
the series as a PNG.

    .venv/bin/python bench/soak.py                              # 30 minutes
    .venv/bin/python bench/soak.py --minutes 6 --interval-s 20 --plot /tmp/soak.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared import keys
from shared.redis import EmbeddedRedis, free_port
from shared.schemas import Detections
from tests.chaos.pipeline import FPS, SAMPLE, SERVICES, EventCollector, Pipeline, doubled

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
RSS_GOAL_PCT = 5.0
LAG_TOLERANCE = (0.25, 20.0)
"""Lag is flat when the late median p50 is within 25 % or 20 ms (whichever is larger) of the early one."""


@dataclass
class ProcessSample:
    rss_mib: float
    fds: int
    threads: int


@dataclass
class Sample:
    t_s: float
    processes: dict[str, ProcessSample]
    redis_used_mib: float
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    fps: float
    events: int
    scrape_errors: int = 0


def proc_sample(pid: int) -> ProcessSample:
    """RSS (``/proc/PID/statm``), open fds (``/proc/PID/fd``), threads (``/proc/PID/status``)."""
    resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("Threads:")
    )
    return ProcessSample(rss_mib=resident_pages * PAGE_SIZE / 2**20, fds=fds, threads=threads)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def describe_cpu() -> str:
    info: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        name, _, value = line.partition(":")
        info.setdefault(name.strip(), value.strip())
    return f"{info.get('model name', platform.processor())}, {os.cpu_count()} cores"


def scrape(ports: dict[str, int]) -> int:
    """GET every service's /metrics (as Prometheus does); the number that failed."""
    failed = 0
    for port in ports.values():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
                reply.read()
        except OSError:
            failed += 1
    return failed


class Soak:
    def __init__(
        self, pipeline: Pipeline, redis_pid: int, ports: dict[str, int], events: EventCollector
    ) -> None:
        self.pipeline = pipeline
        self.redis_pid = redis_pid
        self.ports = ports
        self.events = events
        self.started = time.monotonic()
        self._cursors = dict.fromkeys(pipeline.cameras, f"{int(time.time() * 1000)}-0")
        self._cursor_at = time.monotonic()

    def sample(self) -> Sample:
        self.pipeline.assert_alive()
        processes = {name: proc_sample(pid) for name, pid in self.pipeline.pids().items()}
        processes["redis"] = proc_sample(self.redis_pid)
        client = self.pipeline.client
        used = int(client.info("memory")["used_memory"])
        entries = []
        for camera, cursor in self._cursors.items():
            camera_entries = client.xrange(keys.detections_stream(camera), min=f"({cursor}", max="+")
            if camera_entries:
                self._cursors[camera] = camera_entries[-1][0].decode()
            entries += camera_entries
        now = time.monotonic()
        lags = [Detections.decode(fields).timings_ms["queue_wait"] for _id, fields in entries]
        fps = len(entries) / max(1e-9, now - self._cursor_at)
        self._cursor_at = now
        return Sample(
            t_s=now - self.started, processes=processes, redis_used_mib=used / 2**20,
            lag_p50_ms=percentile(lags, 0.5) if lags else None,
            lag_p99_ms=percentile(lags, 0.99) if lags else None,
            fps=fps, events=len(self.events.snapshot()), scrape_errors=scrape(self.ports),
        )  # fmt: skip


# -- report -----------------------------------------------------------------------------------------

NAMES = (*SERVICES, "redis")


def print_row(sample: Sample, *, header: bool) -> None:
    if header:
        rss = " ".join(f"{name[:6]:>7s}" for name in NAMES)
        print(f"{'min':>5s} | RSS MiB {rss} | fds  i   d   a  | thr  i   d   a  | redis MiB | "
              f"lag p50  p99 ms | fps  | events")  # fmt: skip
    p = sample.processes
    rss = " ".join(f"{p[name].rss_mib:7.1f}" for name in NAMES)
    fds = " ".join(f"{p[name].fds:3d}" for name in SERVICES)
    threads = " ".join(f"{p[name].threads:3d}" for name in SERVICES)
    lag = (f"{sample.lag_p50_ms:7.0f} {sample.lag_p99_ms:5.0f}" if sample.lag_p50_ms is not None
           else f"{'-':>7s} {'-':>5s}")  # fmt: skip
    print(f"{sample.t_s / 60:5.1f} | {'':7s} {rss} | {'':3s} {fds}  | {'':3s} {threads}  | "
          f"{sample.redis_used_mib:9.1f} | {lag}    | {sample.fps:4.1f} | {sample.events}",
          flush=True)  # fmt: skip


def growth(base: float, end: float) -> float:
    return 100.0 * (end - base) / base if base else 0.0


def report(samples: list[Sample], warmup_s: float) -> bool:
    """Print base → end per metric with the verdicts; True when every goal is met."""
    after = [s for s in samples if s.t_s >= warmup_s]
    if len(after) < 2:
        print(f"too few samples after the {warmup_s / 60:.1f} min warm-up to judge growth")
        return False
    base, end = after[0], after[-1]
    print(f"\ngrowth from the baseline at {base.t_s / 60:.1f} min (first sample after the "
          f"{warmup_s / 60:.1f} min warm-up) to the end at {end.t_s / 60:.1f} min:")  # fmt: skip
    print(f"{'metric':22s} {'base':>9s} {'end':>9s} {'growth':>9s}  goal              verdict")
    ok = True

    def line(metric: str, b: float, e: float, goal: str, passed: bool | None, unit: str = "") -> None:
        nonlocal ok
        ok = ok and passed is not False
        verdict = "-" if passed is None else ("ok" if passed else "FAIL")
        print(f"{metric:22s} {b:9.1f} {e:9.1f} {growth(b, e):+8.1f}%  {goal:17s} {verdict}{unit}")

    for name in SERVICES:
        b, e = base.processes[name].rss_mib, end.processes[name].rss_mib
        line(f"RSS {name} MiB", b, e, f"< {RSS_GOAL_PCT:g} %", growth(b, e) < RSS_GOAL_PCT)
    # Redis holds the bounded streams, which fill up to their MAXLEN first (each camera's detections
    # stream: 2 000 entries, ~7 min at 5 fps) and the alert history: its growth is data, reported,
    # not judged.
    b, e = base.processes["redis"].rss_mib, end.processes["redis"].rss_mib
    line("RSS redis-server MiB", b, e, "(reported)", None)
    for name in SERVICES:
        b, e = base.processes[name].fds, end.processes[name].fds
        line(f"fds {name}", b, e, "flat", e <= b)
    for name in SERVICES:
        b, e = base.processes[name].threads, end.processes[name].threads
        line(f"threads {name}", b, e, "flat", e <= b)
    line("redis used_memory MiB", base.redis_used_mib, end.redis_used_mib, "(reported)", None)
    third = max(1, len(after) // 3)
    early = [s.lag_p50_ms for s in after[:third] if s.lag_p50_ms is not None]
    late = [s.lag_p50_ms for s in after[-third:] if s.lag_p50_ms is not None]
    if early and late:
        b, e = statistics.median(early), statistics.median(late)
        allowed = max(LAG_TOLERANCE[0] * b, LAG_TOLERANCE[1])
        line("lag p50 ms (median)", b, e, "flat", e - b <= allowed)
        b99 = statistics.median(s.lag_p99_ms for s in after[:third] if s.lag_p99_ms is not None)
        e99 = statistics.median(s.lag_p99_ms for s in after[-third:] if s.lag_p99_ms is not None)
        line("lag p99 ms (median)", b99, e99, "(reported)", None)
    else:
        print("lag: no detections in the early or late samples")
        ok = False
    return ok


def plot(samples: list[Sample], warmup_s: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [s.t_s / 60 for s in samples]
    base = next((s for s in samples if s.t_s >= warmup_s), samples[0])
    figure, axes = plt.subplots(5, 1, figsize=(9, 13), sharex=True)
    for name in SERVICES:
        base_mib = base.processes[name].rss_mib
        relative = [100 * s.processes[name].rss_mib / base_mib for s in samples]
        axes[0].plot(minutes, relative, marker=".", label=f"{name} ({base_mib:.0f} MiB = 100 %)")
    axes[0].axhline(100 + RSS_GOAL_PCT, color="tab:red", linestyle=":", linewidth=0.8)
    axes[0].set_ylabel("RSS, % of the baseline")
    axes[0].legend(loc="upper left", fontsize="small")
    panels = [
        ("open fds", lambda s, n: s.processes[n].fds),
        ("threads", lambda s, n: s.processes[n].threads),
    ]
    for axis, (label, value) in zip(axes[1:3], panels, strict=True):
        for name in SERVICES:
            axis.plot(minutes, [value(s, name) for s in samples], marker=".", label=name)
        axis.set_ylabel(label)
        axis.legend(loc="upper left", fontsize="small")
    axes[3].plot(minutes, [s.redis_used_mib for s in samples], marker=".", label="used_memory")
    axes[3].plot(minutes, [s.processes["redis"].rss_mib for s in samples], marker=".", label="server RSS")
    axes[3].set_ylabel("redis (MiB)")
    axes[3].legend(loc="upper left", fontsize="small")
    for key, label in (("lag_p50_ms", "p50"), ("lag_p99_ms", "p99")):
        axes[4].plot(minutes, [getattr(s, key) or float("nan") for s in samples], marker=".", label=label)
    axes[4].set_ylabel("detector queue lag (ms)")
    axes[4].legend(loc="upper left", fontsize="small")
    axes[4].set_xlabel("minutes")
    for axis in axes:
        axis.axvline(warmup_s / 60, color="grey", linestyle="--", linewidth=0.8)
        axis.grid(alpha=0.3)
    figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# -- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    parser.add_argument("--interval-s", type=float, default=30.0, help="seconds between samples (default 30)")
    parser.add_argument("--cameras", type=int, default=2, help="copies of the bundled clip (default 2)")
    parser.add_argument(
        "--warmup-min", type=float, help="baseline after this (default: 5, or a sixth of the run)"
    )
    parser.add_argument("--plot", type=Path, help="write the series as a PNG here")
    parser.add_argument("--json", type=Path, help="write the samples as JSON here")
    parser.add_argument(
        "--logs", type=Path, help="folder for the config and service logs (default: a temp dir)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warmup_s = 60 * (args.warmup_min if args.warmup_min is not None else min(5.0, args.minutes / 6))
    folder = args.logs or Path(tempfile.mkdtemp(prefix="vigil-soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"cpu: {describe_cpu()}; load average at start {load}")
    print(f"{args.minutes:g} min, a sample every {args.interval_s:g} s, baseline after "
          f"{warmup_s / 60:.1f} min; {args.cameras} cameras (the bundled clip, looped) at {FPS} fps; "
          f"logs in {folder}")  # fmt: skip
    cameras = [
        {"id": f"cam-{i + 1}", "url": str(SAMPLE), "fps": FPS, "loop": True} for i in range(args.cameras)
    ]
    ports = {service: free_port() for service in SERVICES}
    samples: list[Sample] = []
    with EmbeddedRedis() as redis_server:
        pipeline = Pipeline(folder, redis_server.url, cameras=cameras, metrics_ports=ports)
        try:
            with EventCollector(pipeline.endpoint, name="soak-subscriber") as events:
                pipeline.start_all()
                soak = Soak(pipeline, redis_server.pid, ports, events)
                end_at = soak.started + 60 * args.minutes
                next_at = soak.started + args.interval_s
                while next_at <= end_at + 1e-6:
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    samples.append(soak.sample())
                    print_row(samples[-1], header=len(samples) == 1)
                    next_at += args.interval_s
                received = events.snapshot()
        finally:
            codes = pipeline.close()
    started = sum(event.kind == "started" for event in received)
    twice = len(doubled(event.event_id for event in received))
    print(f"\nevents received: {len(received)} ({started} started), ids received twice: {twice}; "
          f"exit codes {codes}")  # fmt: skip
    print(f"/metrics scrapes that failed: {sum(s.scrape_errors for s in samples)} of {3 * len(samples)}")
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = report(samples, warmup_s) and set(codes.values()) <= {0}
    if args.plot:
        title = f"vigil soak: {args.minutes:g} min, {args.cameras} cameras at {FPS} fps; {describe_cpu()}"
        plot(samples, warmup_s, args.plot, title)
        print(f"plot: {args.plot}")
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in samples], indent=1))
    print("all goals met" if ok else "some goal NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
