"""The console's live views: CPU of the ``vigil web`` process per viewed camera stream, and the
latency from a frame's capture to its arrival at a viewer, at 1, 4 and 16 viewers.

``vigil web`` runs as its own process (loopback, no login), so its CPU is read from /proc apart
from this script's. Each viewer watches a camera of its own (the worst case: one Redis reader and
one box drawing per viewer; viewers of one camera share both). Each camera gets ``--fps`` frames a
second: JPEGs of the bundled clip at 640 px, and right after each frame its detections, one
tracked pistol, so every frame is decoded, drawn on and re-encoded (frames without objects go out
untouched and cost far less). Latency: the viewer's clock when a part's last byte arrived minus the
frame's capture stamp (``X-Capture-Ts-Ns``), on one host; the detector's own delay is not in it
(detections are published at once). Redis is ``--redis`` (database 13 by default; flushed).

    PYTHONPATH=. python bench/web.py [--seconds 20] [--fps 5] [--viewers 1 4 16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import httpx
import yaml

from bench._cpu import cpu_seconds, describe_cpu
from shared import keys
from shared.config import RedisConfig
from shared.eventstore import EventStore
from shared.redis import connect, free_port
from shared.registry import CameraStatus, write_status
from tests.support.messages import jpeg_frame, pistol_detections
from tests.support.mjpeg import parts

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "samples" / "pistols.mp4"
WIDTH = 640


def sample_jpegs(count: int = 50) -> tuple[list[bytes], int]:
    capture = cv2.VideoCapture(str(CLIP))
    jpegs, height = [], 0
    while len(jpegs) < count:
        ok, image = capture.read()
        if not ok:
            break
        height = round(image.shape[0] * WIDTH / image.shape[1])
        image = cv2.resize(image, (WIDTH, height))
        jpegs.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return jpegs, height


def publish(
    client, cameras: list[str], fps: float, stop: threading.Event, jpegs: list[bytes], height: int
) -> None:
    seq, period = 0, 1 / fps
    box = (200.0, 100.0, 360.0, 260.0)
    next_at = time.monotonic()
    while not stop.is_set():
        pipe = client.pipeline(transaction=False)
        for camera in cameras:
            data = jpegs[seq % len(jpegs)]
            frame = jpeg_frame(
                camera, seq, time.time_ns(), data, width=WIDTH, height=height, pts_ms=seq * 200
            )
            pipe.xadd(keys.frames_stream(camera), frame.encode(), maxlen=100, approximate=True)
            detections = pistol_detections(frame, box, track_id=1, model="bench", timings_ms={"total": 0.0})
            pipe.xadd(keys.detections_stream(camera), detections.encode(), maxlen=100, approximate=True)
        pipe.execute()
        seq += 1
        next_at += period
        time.sleep(max(0.0, next_at - time.monotonic()))


def view(url: str, latencies_ms: list[float], stop: threading.Event) -> None:
    try:
        with httpx.Client(timeout=5) as client, client.stream("GET", url) as reply:
            for part in parts(reply):
                latencies_ms.append((part.received_ns - int(part.headers["x-capture-ts-ns"])) / 1e6)
                if stop.is_set():
                    return
    except httpx.ReadTimeout:
        if not stop.is_set():  # frames stop with the publisher: a quiet stream after that is the end
            raise


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def run_level(base: str, server_pid: int, client, viewers: int, args, jpegs, height) -> dict:
    cameras = [f"bench{i}" for i in range(viewers)]
    for camera in cameras:
        write_status(
            client,
            CameraStatus(
                camera=camera, state="streaming", owner="bench", updated_ns=time.time_ns(), fps=args.fps
            ),
        )
    stop, latencies = threading.Event(), [[] for _ in cameras]
    publisher = threading.Thread(
        target=publish, args=(client, cameras, args.fps, stop, jpegs, height), daemon=True
    )
    publisher.start()
    threads = [
        threading.Thread(
            target=view, args=(f"{base}/api/cameras/{c}/stream.mjpeg", latencies[i], stop), daemon=True
        )
        for i, c in enumerate(cameras)
    ]
    for thread in threads:
        thread.start()
    time.sleep(args.warmup)
    for lat in latencies:
        lat.clear()
    cpu0, wall0 = cpu_seconds(server_pid), time.monotonic()
    time.sleep(args.seconds)
    cpu, wall = cpu_seconds(server_pid) - cpu0, time.monotonic() - wall0
    stop.set()
    for thread in [publisher, *threads]:
        thread.join(5)
    flat = [v for lat in latencies for v in lat]
    received_fps = len(flat) / wall / viewers
    return {
        "viewers": viewers,
        "cpu_pct_per_stream": 100 * cpu / wall / viewers,
        "cpu_pct_total": 100 * cpu / wall,
        "fps_per_viewer": received_fps,
        "p50_ms": pct(flat, 50),
        "p99_ms": pct(flat, 99),
        "frames": len(flat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 4, 16])
    args = parser.parse_args()
    client = connect(RedisConfig(url=args.redis))
    client.flushdb()
    jpegs, height = sample_jpegs()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        store_url = f"sqlite:///{folder}/events.db"
        EventStore.open(store_url).close()
        config = Path(folder) / "vigil.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "redis": {"url": args.redis},
                    "logging": {"level": "WARNING"},
                    "web": {"port": port, "metrics_port": None, "max_streams": 1000},
                    "record": {"store_url": store_url, "clips_dir": f"{folder}/clips"},
                }
            )
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen([sys.executable, "-m", "vigil", "web", "-c", str(config)], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            print(f"CPU: {describe_cpu()}; {os.cpu_count()} cores (shared with whatever else runs)")
            print(
                f"frames {WIDTH}x{height} JPEG at {args.fps:g} fps per camera, each with a box to draw; "
                f"{args.seconds:g} s per level"
            )
            print(
                f"{'viewers':>7} {'CPU %/stream':>13} {'CPU % total':>12} {'fps/viewer':>11} {'p50 ms':>8} "
                f"{'p99 ms':>8}"
            )
            for viewers in args.viewers:
                row = run_level(base, server.pid, client, viewers, args, jpegs, height)
                print(
                    f"{row['viewers']:>7} {row['cpu_pct_per_stream']:>13.1f} {row['cpu_pct_total']:>12.1f} "
                    f"{row['fps_per_viewer']:>11.2f} {row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f}",
                    flush=True,
                )
                time.sleep(1)
        finally:
            server.terminate()
            server.wait(10)
            client.flushdb()


if __name__ == "__main__":
    main()
