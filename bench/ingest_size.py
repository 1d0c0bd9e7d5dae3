"""What a larger ingest ``cameras[].max_side`` costs: bytes, Redis memory, ingest CPU, detector decode.

For each ``--sides`` value (640, 960, 1280 by default) one camera runs the real ingest path on
``bench/ingest.py``'s clip (1280×720 H.264 25 fps, 30 s), unpaced, with the default ingest and
camera config except ``max_side``: 5 fps published, JPEG q85, ``ingest.stream_maxlen`` 100. Each run
is a fresh child process (``bench/ingest.py``'s ``measure_unpaced``) into a real Redis (database 14
by default; the script flushes it). After it, this script reads the camera's frames stream:

* JPEG bytes per frame (mean, p95) over the frames the stream holds, hence the camera's bandwidth
  into Redis at the published fps (payload only; each reader of the stream takes as much out);
* ``MEMORY USAGE ... SAMPLES 0`` of the full stream, and that times ``--fleet`` cameras;
* ingest CPU: the child's process CPU time per second of video (all threads), and the ratio
  against the first side within each repeat (median of the ratios); the mean wall time of one
  resize + encode (ingest's ``vigil_ingest_encode_seconds``); the Redis server's CPU on its own
  (``INFO cpu``: server-wide, so other clients of that server count too);
* the detector's CPU per frame of those JPEGs, on one thread (``time.thread_time``; OpenCV's
  pool set to one thread), median over every frame and pass: ``whole N`` is
  ``detector.runner.decode_at_scale`` for a model input of N px (a JPEG at least twice the input is decoded
  at 1/2, 1/4 or 1/8 scale straight from its DCT coefficients, then shrunk); ``native`` is
  the full-size decode that region inference adds for a frame with crops (``native_image``);
  ``motion`` is ``MotionDetector.detect`` (reduced grey decode and the background update).

Last, ingest's ``resize`` alone is timed from 1280x720 frames and from 1920x1080 ones (the clip
scaled up): ``shared.imaging.shrink``, whose cost depends on the ratio (2x halvings, then bilinear).

Repeats are interleaved, in ABBA order. Run it niced on a shared machine:

    nice -n 10 .venv/bin/python bench/ingest_size.py                     # about 1.5 minutes on 2 cores
    nice -n 10 .venv/bin/python bench/ingest_size.py --repeat 5 --json /tmp/ingest-size.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np

from bench._cpu import describe_cpu
from bench.ingest import (
    CHILD_ENV_VARS,
    CPUS,
    REDIS_URL_ENV,
    Overrides,
    Sample,
    camera_id,
    describe_clip,
    ensure_clip,
    flush_redis,
    interleaved,
    measure_unpaced,
    median,
)
from shared import keys
from shared.config import CameraConfig, IngestConfig
from shared.schemas import Frame

SIDES = (640, 960, 1280)
INPUT_SIZES = (384, 448)
"""Model inputs to time the detector's decode at: the shipped detector's, and the Lite1 run's."""
FPS = CameraConfig.model_fields["fps"].default
JPEG_QUALITY = CameraConfig.model_fields["jpeg_quality"].default
STREAM_MAXLEN = IngestConfig.model_fields["stream_maxlen"].default
CAMERA = camera_id(0)


@dataclass
class Run:
    """One side in one repeat: the child's ingest sample and what its stream holds."""

    side: int
    sample: Sample
    width: int
    height: int
    jpeg_bytes: list[int]
    stream_bytes: int
    """``MEMORY USAGE`` of the frames stream, all of it sampled."""
    stream_len: int
    decode_ms: dict[str, float]
    """Median CPU-ms per frame of each detector step (see the module docstring)."""


# -- inside a child process ----------------------------------------------------------------------


def run_child(args: argparse.Namespace) -> None:
    overrides = Overrides(camera={"max_side": args.child}, ingest={"stream_maxlen": args.stream_maxlen})
    print(json.dumps(asdict(measure_unpaced("ingest", Path(args.clip), overrides))))


# -- the parent ----------------------------------------------------------------------------------


def spawn(side: int, clip: Path, args: argparse.Namespace) -> Sample:
    """One unpaced ingest run at ``side`` in a child process with the service's own defaults."""
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_VARS}
    env[REDIS_URL_ENV] = args.redis_url
    command = [sys.executable, __file__, "--child", str(side), "--clip", str(clip)]
    done = subprocess.run(
        [*command, "--stream-maxlen", str(args.stream_maxlen)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"child at max_side {side} failed:\n{done.stderr[-3000:]}")
    return Sample(**json.loads(done.stdout.strip().splitlines()[-1]))


def stream_frames(client: Any) -> tuple[list[Frame], int]:
    """The frames in the camera's stream, and the stream's ``MEMORY USAGE`` (every node counted)."""
    key = keys.frames_stream(CAMERA)
    memory = int(client.memory_usage(key, samples=0) or 0)
    return [Frame.decode(fields) for _id, fields in client.xrange(key)], memory


def thread_ms(call: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """``call(*args)`` and the CPU milliseconds this thread spent in it."""
    started = time.thread_time_ns()
    result = call(*args)
    return result, (time.thread_time_ns() - started) / 1e6


def time_decodes(frames: Sequence[Frame], input_sizes: Sequence[int], passes: int) -> dict[str, float]:
    """Median CPU-ms per frame of the detector's per-frame steps on ``frames`` (one thread)."""
    from detector.motion import MotionDetector
    from detector.postprocess import chw
    from detector.runner import DecodedFrame, decode_at_scale, native_image
    from shared.config import MotionConfig

    cv2.setNumThreads(1)
    times: dict[str, list[float]] = {f"whole {size}": [] for size in input_sizes}
    times |= {"native": [], "motion": []}
    for _ in range(passes):
        motion = MotionDetector(MotionConfig())
        for frame in frames:
            for size in input_sizes:
                rgb, ms = thread_ms(decode_at_scale, frame, size)
                times[f"whole {size}"].append(ms)
            decoded = DecodedFrame(frame, chw(rgb), frame.width / rgb.shape[1])
            times["native"].append(thread_ms(native_image, decoded, chw)[1])
            times["motion"].append(thread_ms(motion.detect, frame)[1])
    return {name: median(values) for name, values in times.items()}


def resize_costs(clip: Path, sides: Sequence[int], frames: int = 30) -> dict[str, dict[int, float]]:
    """Median CPU-ms of ingest's own ``resize`` alone (one thread) from the clip's 1280x720 frames and
    from them scaled up to 1920x1080, as a 1080p camera's would be: what a ``max_side`` costs
    depends on the camera's ratio to it."""
    from ingest.sampler import resize

    cv2.setNumThreads(1)
    capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    images = [capture.read()[1] for _ in range(frames)]
    capture.release()
    sources = {"1280x720": images, "1920x1080": [cv2.resize(i, (1920, 1080)) for i in images]}
    return {
        name: {side: median([thread_ms(resize, image, side)[1] for image in source]) for side in sides}
        for name, source in sources.items()
    }


def measure(side: int, clip: Path, client: Any, args: argparse.Namespace) -> Run:
    sample = spawn(side, clip, args)
    frames, memory = stream_frames(client)
    if len(frames) < args.stream_maxlen:
        print(f"  warning: the stream holds {len(frames)} frames, not yet full ({args.stream_maxlen})")
    return Run(
        side=side, sample=sample, width=frames[0].width, height=frames[0].height,
        jpeg_bytes=[len(f.data) for f in frames], stream_bytes=memory, stream_len=len(frames),
        decode_ms=time_decodes(frames, args.input_sizes, args.decode_passes),
    )  # fmt: skip


def print_run(run: Run) -> None:
    decodes = ", ".join(f"{name} {ms:.2f}" for name, ms in run.decode_ms.items())
    print(
        f"  max_side {run.side:5d}: {run.width}x{run.height}, {statistics.fmean(run.jpeg_bytes) / 1000:5.1f}"
        f" kB/frame, stream {run.stream_bytes / 2**20:5.2f} MiB ({run.stream_len} entries), ingest"
        f" {run.sample.cost_ms:5.1f} CPU-ms per video-s (resize + encode {run.sample.encode_ms:.2f} ms);"
        f" detector CPU-ms/frame: {decodes}",
        flush=True,
    )


def summary(runs: Sequence[Run], args: argparse.Namespace) -> list[dict[str, Any]]:
    """One row per side: medians over the repeats, CPU against the first side within each repeat."""
    base = [r for r in runs if r.side == args.sides[0]]
    rows = []
    for side in args.sides:
        mine = [r for r in runs if r.side == side]
        jpeg = [b for r in mine for b in r.jpeg_bytes]
        stream = median([r.stream_bytes for r in mine])
        ratios = [r.sample.cost_ms / b.sample.cost_ms for r, b in zip(mine, base, strict=True)]
        rows.append({
            "max_side": side, "frame": f"{mine[0].width}x{mine[0].height}",
            "jpeg_mean_kb": statistics.fmean(jpeg) / 1000,
            "jpeg_p95_kb": float(np.percentile(jpeg, 95)) / 1000,
            "kbit_s": statistics.fmean(jpeg) * FPS * 8 / 1000,
            "stream_entries": median([r.stream_len for r in mine]),
            "stream_mib": stream / 2**20, "fleet_mib": args.fleet * stream / 2**20,
            "ingest_ms": median([r.sample.cost_ms for r in mine]),
            "ingest_ratio": median(ratios),
            "encode_ms": median([r.sample.encode_ms for r in mine]),
            "redis_ms": median([1000 * r.sample.server_cpu_s / r.sample.video_s for r in mine]),
            "decode_ms": {name: median([r.decode_ms[name] for r in mine]) for name in mine[0].decode_ms},
        })  # fmt: skip
    return rows


def print_summary(rows: Sequence[dict[str, Any]], args: argparse.Namespace) -> None:
    decodes = list(rows[0]["decode_ms"])
    print(
        f"\n{'max_side':>8} {'frame':>9} {'JPEG kB mean':>12} {'p95':>5} {'kbit/s':>7}"
        f" {'stream MiB':>10} {f'{args.fleet} cams':>8} {'ingest ms/s':>11} {f'vs {args.sides[0]}':>7}"
        f" {'resize+enc ms':>13}"
        f" {'redis ms/s':>10}  detector CPU-ms/frame: {'  '.join(decodes)}"
    )
    for row in rows:
        decode = "  ".join(f"{row['decode_ms'][name]:{len(name)}.2f}" for name in decodes)
        print(
            f"{row['max_side']:8d} {row['frame']:>9} {row['jpeg_mean_kb']:12.1f} {row['jpeg_p95_kb']:5.1f}"
            f" {row['kbit_s']:7.0f} {row['stream_mib']:10.2f} {row['fleet_mib']:8.1f}"
            f" {row['ingest_ms']:11.1f} {row['ingest_ratio']:6.2f}x {row['encode_ms']:13.2f}"
            f" {row['redis_ms']:10.2f}"
            f"  {' ' * 22}{decode}"
        )
    print(
        f"(kbit/s: mean JPEG bytes at {FPS:g} fps into Redis, payload only; stream MiB: MEMORY USAGE at"
        f" stream_maxlen {args.stream_maxlen}; ingest and redis: CPU-ms per second of video per camera;"
        " resize+enc: wall ms per published frame)"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sides", type=int, nargs="+", default=list(SIDES), help="max_side values")
    parser.add_argument("--repeat", type=int, default=3, help="repeats of each side (ABBA order)")
    parser.add_argument("--input-sizes", type=int, nargs="+", default=list(INPUT_SIZES),
                        help="model inputs to time the detector's decode at")  # fmt: skip
    parser.add_argument("--decode-passes", type=int, default=3, help="passes over the frames per run")
    parser.add_argument("--stream-maxlen", type=int, default=STREAM_MAXLEN, help="ingest.stream_maxlen")
    parser.add_argument("--fleet", type=int, default=16, help="cameras to total the stream memory for")
    parser.add_argument("--clip", type=Path, help="a 25 fps clip (default: bench/ingest.py's)")
    parser.add_argument("--json", type=Path, help="also write every run and the summary here")
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/14", help="database to use; it is flushed"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return
    import redis

    started = time.monotonic()
    clip = args.clip or ensure_clip()
    load = os.getloadavg()[0]
    print(f"CPU: {describe_cpu()}, {CPUS} CPUs, load {load:.2f}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(
        f"clip: {clip} ({describe_clip(clip)}); OpenCV {cv2.__version__}, Redis {args.redis_url};"
        f" {FPS:g} fps, JPEG q{JPEG_QUALITY}, stream_maxlen {args.stream_maxlen}; repeat {args.repeat}\n",
        flush=True,
    )
    client = redis.Redis.from_url(args.redis_url)
    runs: list[Run] = []
    try:
        for side in interleaved(args.sides, args.repeat):
            runs.append(measure(side, clip, client, args))
            print_run(runs[-1])
    finally:
        flush_redis(args.redis_url)
        client.close()
    rows = summary(runs, args)
    print_summary(rows, args)
    resizes = resize_costs(clip, args.sides)
    print("\ningest's resize alone (shared.imaging.shrink), CPU-ms per frame on one thread, median:")
    for source, costs in resizes.items():
        print(f"  from {source:9}: " + ", ".join(f"max_side {side} {ms:.2f}" for side, ms in costs.items()))
    if args.json:
        data = {"runs": [asdict(r) for r in runs], "summary": rows, "resize_ms": resizes}
        args.json.write_text(json.dumps(data, indent=1))
        print(f"wrote {args.json}")
    print(f"(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
