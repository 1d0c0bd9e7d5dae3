"""``vigil demo``: the pipeline on the bundled sample, with a live view of what reaches Redis.

Like ``shared/cli.py`` this is a composition root: it may import the services. It uses the Redis
named by ``VIGIL_REDIS_URL`` when that answers, else an embedded one that it removes at exit.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from shared import keys
from shared.config import CameraConfig, IngestConfig, RedisConfig
from shared.redis import EmbeddedRedis, answers, connect
from shared.schemas import Frame

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "pistols.mp4"


@contextlib.contextmanager
def demo_redis() -> Iterator[str]:
    """The configured Redis if it answers, else an embedded one for the duration."""
    url = os.environ.get("VIGIL_REDIS_URL", "")
    if url and answers(url):
        yield url
        return
    if url:
        print(
            "vigil demo: VIGIL_REDIS_URL does not answer; starting an embedded Redis",
            file=sys.stderr,
        )
    with EmbeddedRedis() as embedded:
        yield embedded.url


@dataclass
class CameraView:
    """What has arrived in Redis for one camera, as the live view shows it."""

    frames: int = 0
    bytes: int = 0
    last_seq: int = -1
    size: str = "-"
    lag_ms: list[float] = field(default_factory=list)
    first_at: float = 0.0
    last_at: float = 0.0

    def add(self, frame: Frame, now: float) -> None:
        self.first_at = self.first_at or now
        self.last_at = now
        self.frames += 1
        self.bytes += len(frame.data)
        self.last_seq = frame.seq
        self.size = f"{frame.width}x{frame.height}"
        self.lag_ms.append((time.time_ns() - frame.ts_ns) / 1e6)

    @property
    def fps(self) -> float:
        span = self.last_at - self.first_at
        return (self.frames - 1) / span if self.frames > 1 and span > 0 else 0.0

    def row(self, camera: str) -> dict[str, object]:
        lags = sorted(self.lag_ms)
        return {
            "camera": camera,
            "frames": self.frames,
            "fps": round(self.fps, 2),
            "seq": self.last_seq,
            "size": self.size,
            "kb_per_frame": round(self.bytes / self.frames / 1024, 1) if self.frames else 0,
            "lag_ms_p50": round(lags[len(lags) // 2], 1) if lags else None,
            "lag_ms_max": round(lags[-1], 1) if lags else None,
        }


def _watch(client: redis.Redis, views: dict[str, CameraView], stop: threading.Event) -> None:
    """Read every camera's stream from now on (XREAD BLOCK) and account for each frame."""
    cursors = {keys.frames_stream(camera): "$" for camera in views}
    while not stop.is_set():
        for stream, entries in client.xread(cursors, block=200) or []:
            for entry_id, fields in entries:
                cursors[stream.decode()] = entry_id
                frame = Frame.decode(fields)
                views[frame.camera].add(frame, time.monotonic())


def _print_table(views: dict[str, CameraView], elapsed: float, as_json: bool) -> None:
    rows = [view.row(camera) for camera, view in views.items()]
    if as_json:
        for row in rows:
            print(json.dumps({"t_s": round(elapsed, 1), **row}), flush=True)
        return
    print(
        f"\n[{elapsed:5.1f}s] {'camera':<10} {'frames':>7} {'fps':>6} {'seq':>6} {'size':>9} "
        f"{'KB/frame':>9} {'lag p50':>9}"
    )
    for row in rows:
        lag = f"{row['lag_ms_p50']:.0f} ms" if row["lag_ms_p50"] is not None else "-"
        print(
            f"{'':8} {row['camera']:<10} {row['frames']:>7} {row['fps']:>6} {row['seq']:>6} "
            f"{row['size']:>9} {row['kb_per_frame']:>9} {lag:>9}",
            flush=True,
        )


def run_demo(*, seconds: float, cameras: int, sample: str | None, as_json: bool) -> int:
    from ingest.service import IngestService

    clip = Path(sample) if sample else SAMPLE
    if not clip.is_file():
        print(f"vigil demo: sample clip not found: {clip}", file=sys.stderr)
        return 2
    camera_configs = tuple(
        CameraConfig(id=f"demo-{i + 1}", url=str(clip), fps=5, max_side=640, loop=True)
        for i in range(cameras)
    )
    with demo_redis() as url:
        client = connect(RedisConfig(url=url))
        for camera in camera_configs:
            client.delete(keys.frames_stream(camera.id))
        views = {camera.id: CameraView() for camera in camera_configs}
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(client, views, stop), name="watch", daemon=True)
        watcher.start()
        service = IngestService(IngestConfig(instance="demo", metrics_port=0), camera_configs, client=client)
        runner = threading.Thread(target=service.run, name="ingest", daemon=True)
        print(
            f"vigil demo: {cameras} camera(s) playing {clip.name} into {url} for {seconds:.0f}s",
            flush=True,
        )
        started = time.monotonic()
        runner.start()
        try:
            while (elapsed := time.monotonic() - started) < seconds:
                time.sleep(min(2.0, seconds - elapsed))
                _print_table(views, time.monotonic() - started, as_json)
        except KeyboardInterrupt:
            pass
        finally:
            service.stop()
            runner.join(timeout=15)
            stop.set()
            watcher.join(timeout=2)
        total = sum(view.frames for view in views.values())
        print(
            f"vigil demo: done, {total} frames arrived in Redis from {cameras} camera(s)",
            flush=True,
        )
        return 0 if total > 0 else 1
