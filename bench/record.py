"""What ``vigil record`` costs: CPU seconds per second of clip, and Redis memory per camera.

The bundled clip (samples/pistols.mp4) is resized to ``--side`` px on its longer side and encoded
as ingest does (JPEG quality 85), stamped at ``--fps`` on a past timeline and put in a camera's
frames stream (with a pistol box per frame in its detections stream). ``--clips`` alerts of
``--clip-s`` seconds each are then cut by a real :class:`recorder.service.RecordService` in burst
mode, with boxes drawn and without; the CPU time of this process and its ffmpeg children (user +
system) over the run, divided by the seconds of video written.

Redis memory: the frames stream bounded as ``VigilConfig.frames_maxlen`` bounds it for the recorder
(``(pre_s + alert_lag_s) × fps`` entries), measured with ``MEMORY USAGE``. Redis is ``--redis``
(database 14 by default; the script flushes it).

    python bench/record.py [--clips 6] [--clip-s 10] [--fps 5] [--side 640]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.support, as the tests run it

import cv2
from prometheus_client import CollectorRegistry

from recorder.metrics import RecordMetrics
from recorder.service import RecordService
from shared import keys
from shared.config import CameraConfig, RecordConfig, RedisConfig, RetentionConfig
from shared.eventstore import EventStore
from shared.redis import connect
from tests.recorder.conftest import record_alert
from tests.support.messages import jpeg_frame, pistol_detections

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "samples" / "pistols.mp4"
S = 1_000_000_000


def sample_jpegs(side: int, count: int) -> list[tuple[bytes, int, int]]:
    """``count`` frames of the sample clip (looped) at ``side`` px, as (jpeg, width, height)."""
    capture, frames = cv2.VideoCapture(str(CLIP)), []
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        scale = side / max(image.shape[:2])
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)))
        frames.append(
            (
                cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes(),
                image.shape[1],
                image.shape[0],
            )
        )
    capture.release()
    return frames


def publish(
    client,
    camera: str,
    frames: list[tuple[bytes, int, int]],
    *,
    start_ns: int,
    fps: float,
    maxlen: int | None = None,
) -> None:
    pipe = client.pipeline(transaction=False)
    for seq, (data, width, height) in enumerate(frames):
        ts_ns = start_ns + int(seq * S / fps)
        frame = jpeg_frame(camera, seq, ts_ns, data, width=width, height=height)
        pipe.xadd(keys.frames_stream(camera), frame.encode(), maxlen=maxlen, approximate=False)
        box = (width * 0.3, height * 0.3, width * 0.5, height * 0.6)
        message = pistol_detections(frame, box, track_id=1, model="bench")
        pipe.xadd(keys.detections_stream(camera), message.encode())
    pipe.execute()


def cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cut(client, frames, args: argparse.Namespace, *, draw: bool) -> dict:
    client.flushdb()
    span_s = args.clips * (args.clip_s + 2)
    t0 = time.time_ns() - int((span_s + 60) * S)
    publish(client, "bench", frames[: int(span_s * args.fps)], start_ns=t0, fps=args.fps)
    pre_s, post_s = 2.0, 2.0
    for index in range(args.clips):
        started = t0 + int((index * (args.clip_s + 2) + pre_s) * S)
        ended = started + int((args.clip_s - pre_s - post_s) * S)
        record_alert(client, "bench", started_ns=started, ended_ns=ended, event_id=f"ev{index}")
    with tempfile.TemporaryDirectory() as folder:
        config = RecordConfig(
            instance="bench",
            metrics_port=None,
            store_url=f"sqlite:///{folder}/events.db",
            clips_dir=f"{folder}/clips",
            pre_s=pre_s,
            post_s=post_s,
            draw_boxes=draw,
            retention=RetentionConfig(min_free_bytes=0),
        )
        store = EventStore.open(config.store_url)
        metrics = RecordMetrics(CollectorRegistry())
        camera = CameraConfig(id="bench", url="bench", fps=args.fps)
        before_cpu, before_wall = cpu_s(), time.perf_counter()
        RecordService(config, (camera,), client=client, store=store, metrics=metrics, burst=True).run()
        used_cpu, wall = cpu_s() - before_cpu, time.perf_counter() - before_wall
        video_s = metrics.clip_seconds._value.get()  # type: ignore[attr-defined]
        written = metrics.clips_written._value.get()  # type: ignore[attr-defined]
        clip_bytes = metrics.clip_bytes._value.get()  # type: ignore[attr-defined]
        store.close()
    return {
        "draw_boxes": draw,
        "clips": written,
        "video_s": round(video_s, 1),
        "cpu_s": round(used_cpu, 2),
        "wall_s": round(wall, 2),
        "cpu_s_per_clip_s": round(used_cpu / video_s, 4),
        "bytes_per_clip_s": round(clip_bytes / video_s),
    }


def memory(client, frames, args: argparse.Namespace) -> dict:
    client.flushdb()
    record = RecordConfig()
    maxlen = math.ceil((record.pre_s + record.alert_lag_s) * args.fps)
    publish(client, "mem", frames[: maxlen * 2], start_ns=time.time_ns(), fps=args.fps, maxlen=maxlen)
    stream_bytes = client.memory_usage(keys.frames_stream("mem"), samples=0)
    jpeg_bytes = sum(len(data) for data, _w, _h in frames[maxlen : 2 * maxlen]) / maxlen  # what is kept
    return {
        "pre_s": record.pre_s,
        "alert_lag_s": record.alert_lag_s,
        "fps": args.fps,
        "entries": maxlen,
        "mean_jpeg_bytes": round(jpeg_bytes),
        "stream_bytes": stream_bytes,
        "bytes_per_entry": round(stream_bytes / maxlen),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--clip-s", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--side", type=int, default=640)
    args = parser.parse_args()
    client = connect(RedisConfig(url=args.redis))
    frames = sample_jpegs(args.side, int(args.clips * (args.clip_s + 2) * args.fps) + 100)
    report = {
        "side_px": args.side,
        "fps": args.fps,
        "cut": [cut(client, frames, args, draw=draw) for draw in (False, True)],
        "redis_memory_per_camera": memory(client, frames, args),
    }
    client.flushdb()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
