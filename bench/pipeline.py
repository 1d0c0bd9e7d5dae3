"""Throughput and latency of the whole detector service against a bare ``predict`` loop.

1. **bare**: the frames, already decoded to 640x480 RGB tensors, through ``model.predict`` (which
   letterboxes them to the input size) in batches of ``--batch``, for ``--seconds``: the loop a
   user would write around the model. Also, as references, the same loop on frames already
   shrunk to the model's scale (the model alone: nothing left to do but inference and NMS), and
   the loop on the JPEGs themselves, each batch decoded as the service decodes it, then
   ``predict`` (what the service costs beyond decoding; the gap to the first loop is the decode).
2. **service**: a real :class:`detector.service.DetectorService` (leases, XREAD, dynamic batching,
   JPEG decoding, tracking, XADD of Detections) on ``--cameras`` streams that a feeder *process*
   fills at 1.25x the bare loop's rate (more than the service can take, as cameras would; a
   feeder flooding Redis as fast as it can would mostly measure the feeder): frames per second
   processed, Redis in, Redis out. Same model, batch and input size.
   The ratio service / bare is the goal (>= 0.95).
3. **overload**: the feeder publishes at twice the measured service capacity (spread over the
   cameras, each frame with a fresh capture time) for ``--overload-seconds``; the queue lag of
   every processed frame (capture → inference start, from the Detections entries) is reported
   as p50 / p99 per window of 5 s. Real time first means it stays bounded.
4. **cameras at 5 fps with motion gating**: ``vtest.avi`` played as a live camera (its frames in
   order at 5 fps, each camera starting at another point of the clip, looped), 4, 8, 12, ... cameras
   for ``--step-seconds`` each, until a step is not served: a camera is served when the frames
   inferred plus those the motion gate skipped keep up with what is offered (≥ 97 %) and the queue
   lag's p99 stays under 1 s and does not grow over the step. Prints the share skipped.

Stages 1–3 run with motion gating off (every frame offered reaches the model, as in the bare
loop); stage 4 with the default ``detector.motion``. The engine is the service's (``--engine``,
default ``auto``: measured once per checkpoint and host, ``docs/engines.md``), and so are the process
settings (``vigil/runtime.py``: glibc told to keep its memory, as ``vigil detect`` runs when
OpenVINO may load; passive OpenMP threads). Frames are JPEGs of ``vtest.avi`` (real CCTV, no-gun
test footage: used for speed only) resized to 640x480, as ingest publishes them. The model is the
shipped checkpoint when there is one (``--weights``), else an untrained ``yolo_lite0`` at
``--input-size`` (same cost). Redis: a private embedded server.

    .venv/bin/python bench/pipeline.py              # about 5 minutes
    .venv/bin/python bench/pipeline.py --engine torch --skip-cameras
"""
# ruff: noqa: E402  (the process settings must be in place before torch loads)

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vigil.runtime import tune_for_torch

# the service's process settings with its default engine (OpenVINO aborts under tcmalloc)
tune_for_torch([__file__, *sys.argv[1:]], tcmalloc=False)

import torch

from bench._cpu import cpu_seconds, describe_cpu
from bench.frames import vtest_clip, vtest_jpegs
from detector.models.checkpoint import Checkpoint
from detector.models.registry import build_model
from detector.runner import DEFAULT_WEIGHTS, DetectorRunner
from detector.service import DetectorService
from shared import keys
from shared.config import DetectorConfig, MotionConfig, RedisConfig
from shared.imaging import decode_rgb
from shared.redis import EmbeddedRedis, connect
from shared.schemas import Detections, Frame


def weights_file(args: argparse.Namespace, folder: Path) -> Path:
    if args.weights:
        return Path(args.weights)
    if DEFAULT_WEIGHTS.exists():
        return DEFAULT_WEIGHTS
    model = build_model("yolo_lite0", class_names=("pistol",), input_size=args.input_size)
    return Checkpoint.from_model(model, "yolo_lite0").save(folder / "untrained.pt")


def jpeg_frames(jpegs: list[bytes]) -> list[Frame]:
    """The 640x480 JPEGs as the frames a camera would publish."""
    return [Frame("b", i, 0, 0, 640, 480, "jpeg", data) for i, data in enumerate(jpegs)]


def decoded_images(runner: DetectorRunner, jpegs: list[bytes], *, at_model_scale: bool) -> list[Any]:
    """The frames as RGB uint8 images as the runner's model takes them: at their own 640x480, or
    shrunk to the model's scale the way the service's decode does it."""
    if at_model_scale:
        return [runner.decode(frame).image for frame in jpeg_frames(jpegs)]
    return [runner.model.image(decode_rgb(frame)) for frame in jpeg_frames(jpegs)]


def bare_fps(runner: DetectorRunner, images: list[Any], batch: int, seconds: float) -> float:
    return loop_fps(runner.model.predict, images, batch, seconds)


def bare_from_jpeg_fps(runner: DetectorRunner, jpegs: list[bytes], batch: int, seconds: float) -> float:
    """The bare loop on the JPEGs themselves: each batch decoded as the service decodes it
    (``runner.decode_batch``: JPEG → model scale → RGB), then ``predict``, one after the other."""
    return loop_fps(lambda chunk: runner.detect(runner.decode_batch(chunk)[0]), jpeg_frames(jpegs), batch,
                    seconds)  # fmt: skip


def loop_fps(step: Any, items: list[Any], batch: int, seconds: float) -> float:
    """Items per second through ``step`` (called on ``batch`` of them at a time) over ``seconds``."""
    step(items[:batch])  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        start = (done % (len(items) - batch)) if len(items) > batch else 0
        step(items[start : start + batch])
        done += batch
    return done / (time.perf_counter() - started)


def feed(
    url: str, cameras: int, jpegs: list[bytes], fps_per_camera: float, duration_s: float, offset: int = 0
) -> None:
    """Feeder process: a fresh frame for every camera ``fps_per_camera`` times a second; camera
    ``i`` shows ``jpegs[(seq + i * offset) % len(jpegs)]`` (``offset`` 0: all the same frame)."""
    client = connect(RedisConfig(url=url))
    seq = 0
    next_at = time.monotonic()
    stop_at = next_at + duration_s  # from its own start: a spawned process takes seconds to import
    while time.monotonic() < stop_at:
        pipe = client.pipeline(transaction=False)
        for camera in range(cameras):
            data = jpegs[(seq + camera * offset) % len(jpegs)]
            frame = Frame(f"cam-{camera}", seq, time.time_ns(), seq * 200, 640, 480, "jpeg", data)
            pipe.xadd(keys.frames_stream(frame.camera), frame.encode(), maxlen=50, approximate=True)
        pipe.execute()
        seq += 1
        next_at += 1 / fps_per_camera
        time.sleep(max(0.0, next_at - time.monotonic()))


def run_service(
    url: str,
    redis_pid: int,
    runner: DetectorRunner,
    args: argparse.Namespace,
    *,
    seconds: float,
    fps_per_camera: float,
    jpegs: list[bytes],
    cameras_count: int | None = None,
    motion: bool = False,
    offset: int = 0,
) -> tuple[float, list[Detections], DetectorService]:
    """Frames/s the service processed over ``seconds`` (after a warm-up), its Detections entries of
    that time, and the (stopped) service, whose metrics hold the rest."""
    client = connect(RedisConfig(url=url))
    client.flushdb()
    count = cameras_count or args.cameras
    cameras = [f"cam-{i}" for i in range(count)]
    config = DetectorConfig(
        instance="bench",
        metrics_port=None,
        max_batch=args.batch,
        max_wait_ms=args.max_wait_ms,
        lease_ttl_s=5.0,
        max_frame_age_s=2.0,
        motion=MotionConfig(enabled=motion),
    )
    service = DetectorService(config, cameras, client=client, runner=runner)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    warmup_s = 3.0
    feeder = multiprocessing.get_context("spawn").Process(
        target=feed, args=(url, count, jpegs, fps_per_camera, warmup_s + seconds, offset), daemon=True
    )
    feeder.start()
    while not client.exists(keys.frames_stream(cameras[0])):  # the feeder has started publishing
        time.sleep(0.05)
    time.sleep(warmup_s)
    helpers = (feeder.pid, redis_pid)
    helpers_cpu = [cpu_seconds(pid) for pid in helpers]
    start_count, started = service.processed, time.perf_counter()
    start_model = model_seconds(service)
    start_ms = int(time.time() * 1000)
    time.sleep(seconds)
    elapsed = time.perf_counter() - started
    fps = (service.processed - start_count) / elapsed
    (busy_end, batches_end), (busy_start, batches_start) = model_seconds(service), start_model
    busy, batches = busy_end - busy_start, batches_end - batches_start
    share = sum(cpu_seconds(pid) - before for pid, before in zip(helpers, helpers_cpu, strict=True))
    print(f"  (feeder and Redis used {share / elapsed / os.cpu_count():.0%} of the machine's CPU meanwhile)")
    print(
        f"  the model ran (runner.detect) {busy / elapsed:.0%} of the time: {batches:.0f} batches, "
        f"{1000 * busy / max(1, batches):.0f} ms each, {(fps * elapsed) / max(1, batches):.1f} frames each"
    )
    service.stop()
    thread.join(timeout=30)
    feeder.join(timeout=10)
    streams = map(keys.detections_stream, cameras)
    entries = [entry for stream in streams for entry in client.xrange(stream, min=f"{start_ms}-0")]
    messages = sorted((Detections.decode(fields) for _id, fields in entries), key=lambda m: m.ts_ns)
    return fps, messages, service


def model_seconds(service: DetectorService) -> tuple[float, float]:
    """Seconds the service has spent in runner.detect (not tracking or publishing), and how many batches."""
    registry = service.metrics.registry
    return (
        registry.get_sample_value("vigil_detector_inference_seconds_sum") or 0.0,
        registry.get_sample_value("vigil_detector_inference_seconds_count") or 0.0,
    )


def lag_windows(messages: list[Detections], window_s: float = 5.0) -> list[dict[str, float]]:
    if not messages:
        return []
    first = messages[0].ts_ns
    windows: dict[int, list[float]] = {}
    for message in messages:
        windows.setdefault(int((message.ts_ns - first) / 1e9 // window_s), []).append(
            message.timings_ms["queue_wait"]
        )
    rows = []
    for index in sorted(windows):
        lags = sorted(windows[index])
        rows.append(
            {
                "t_s": index * window_s,
                "frames": len(lags),
                "p50_ms": lags[len(lags) // 2],
                "p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
            }
        )
    return rows


def camera_total(service: DetectorService, metric: str, count: int, **labels: str) -> float:
    """``metric`` summed over cameras ``cam-0`` … ``cam-{count-1}``."""
    registry = service.metrics.registry
    values = (registry.get_sample_value(metric, {"camera": f"cam-{i}", **labels}) for i in range(count))
    return sum(value or 0.0 for value in values)


def serve_cameras(
    url: str, redis_pid: int, runner: DetectorRunner, args: argparse.Namespace, clip: list[bytes]
) -> list[dict[str, float]]:
    """Stage 4: more and more cameras at 5 fps with motion gating, until a step is not served."""
    rows: list[dict[str, float]] = []
    for count in range(4, args.max_cameras + 1, 4):
        fps, messages, service = run_service(
            url, redis_pid, runner, args, seconds=args.step_seconds, fps_per_camera=5.0, jpegs=clip,
            cameras_count=count, motion=True, offset=len(clip) // count,
        )  # fmt: skip
        skipped = camera_total(service, "vigil_detector_frames_skipped_total", count, reason="no_motion")
        inferred = camera_total(service, "vigil_detector_frames_processed_total", count)
        windows = lag_windows(messages)
        lags = sorted(m.timings_ms["queue_wait"] for m in messages)
        p99 = lags[int(len(lags) * 0.99)] if lags else float("inf")
        growing = len(windows) >= 2 and windows[-1]["p99_ms"] > 1.5 * max(windows[0]["p99_ms"], 100)
        # the counters include the warm-up: compare the shares, not the counts
        kept_up = fps / (5.0 * count * (1 - skipped / max(1.0, skipped + inferred)))
        row = {"cameras": count, "offered_fps": 5.0 * count, "inferred_fps": fps,
               "skipped_share": skipped / max(1.0, skipped + inferred), "kept_up": kept_up,
               "lag_p50_ms": lags[len(lags) // 2] if lags else float("inf"), "lag_p99_ms": p99,
               "served": kept_up >= 0.97 and p99 < 1000 and not growing}  # fmt: skip
        rows.append(row)
        print(f"  {count:3d} cameras: offered {row['offered_fps']:5.0f} frames/s, skipped "
              f"{row['skipped_share']:5.1%}, inferred {fps:5.1f}/s (kept up {kept_up:5.1%}), "
              f"lag p50 {row['lag_p50_ms']:6.0f} ms p99 {p99:6.0f} ms"
              f"{' growing' if growing else ''} -> {'' if row['served'] else 'NOT '}served")  # fmt: skip
        if not row["served"]:
            break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--weights", help="checkpoint (default: the shipped one, else an untrained yolo_lite0)"
    )
    parser.add_argument("--input-size", type=int, default=384)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=50)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--overload-seconds", type=float, default=40)
    parser.add_argument("--engine", default="auto", help="detector.engine (default auto, as the service)")
    parser.add_argument("--precision", default="auto", help="detector.precision")
    parser.add_argument("--step-seconds", type=float, default=20, help="stage 4: seconds per camera count")
    parser.add_argument("--max-cameras", type=int, default=40, help="stage 4: stop at this many")
    parser.add_argument("--skip-cameras", action="store_true", help="leave out stage 4")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()

    jpegs = vtest_jpegs(64, 640, 480)
    print(describe_cpu())
    with tempfile.TemporaryDirectory() as folder, EmbeddedRedis() as redis_server:
        runner = DetectorRunner(weights_file(args, Path(folder)), score_thresh=0.25, engine=args.engine,
                                precision=args.precision)  # fmt: skip
        print(
            f"model {runner.name}, engine {runner.engine}, input {runner.input_size}, batch {args.batch}, "
            f"{torch.get_num_threads()} torch threads, {args.cameras} cameras, frames 640x480 JPEG"
        )
        frames = decoded_images(runner, jpegs, at_model_scale=False)
        bare = bare_fps(runner, frames, args.batch, args.seconds)
        print(f"bare predict loop: {1000 * args.batch / bare:.0f} ms per batch of {args.batch}")
        service, _, _ = run_service(
            redis_server.url,
            redis_server.pid,
            runner,
            args,
            seconds=args.seconds,
            fps_per_camera=1.25 * bare / args.cameras,
            jpegs=jpegs,
        )
        bare_again = bare_fps(runner, frames, args.batch, args.seconds / 2)
        bare_mean = (bare + bare_again) / 2
        model_alone = bare_fps(
            runner, decoded_images(runner, jpegs, at_model_scale=True), args.batch, args.seconds / 2
        )
        from_jpeg = bare_from_jpeg_fps(runner, jpegs, args.batch, args.seconds / 2)
        print(f"bare predict loop : {bare:7.1f} and {bare_again:7.1f} frames/s (before and after)")
        print(f"detector service  : {service:7.1f} frames/s   ratio {service / bare_mean:.3f} (goal >= 0.95)")
        print(
            f"model alone       : {model_alone:7.1f} frames/s on frames already at the model's scale "
            f"(service / model alone {service / model_alone:.3f})"
        )
        print(
            f"bare loop on JPEG : {from_jpeg:7.1f} frames/s, decoding as the service does, then predict "
            f"(service / this {service / from_jpeg:.3f}; decoding costs "
            f"{1000 / from_jpeg - 1000 / bare_mean:.2f} ms a frame here)"
        )
        overload_fps = 2 * service / args.cameras
        print(
            f"\noverload: {args.cameras} cameras x {overload_fps:.2f} fps = {2 * service:.1f} frames/s "
            f"offered (2x capacity) for {args.overload_seconds:.0f} s"
        )
        processed, messages, _ = run_service(
            redis_server.url,
            redis_server.pid,
            runner,
            args,
            seconds=args.overload_seconds,
            fps_per_camera=overload_fps,
            jpegs=jpegs,
        )
        rows = lag_windows(messages)
        print(f"processed {processed:.1f} frames/s; queue lag (capture -> inference start) per 5 s window:")
        for row in rows:
            print(
                f"  t={row['t_s']:5.0f}s  frames {row['frames']:4d}  p50 {row['p50_ms']:7.1f} ms  "
                f"p99 {row['p99_ms']:7.1f} ms"
            )
        all_lags = sorted(m.timings_ms["queue_wait"] for m in messages)
        if all_lags:
            print(
                f"overall p50 {statistics.median(all_lags):.1f} ms, "
                f"p99 {all_lags[int(len(all_lags) * 0.99)]:.1f} ms"
            )
        cameras: list[dict[str, float]] = []
        if not args.skip_cameras:
            print("\ncameras at 5 fps, vtest.avi played live (phase offsets), motion gating on:")
            cameras = serve_cameras(redis_server.url, redis_server.pid, runner, args,
                                    vtest_clip(5.0, 640, 480))  # fmt: skip
            served = [row["cameras"] for row in cameras if row["served"]]
            print(f"served: {max(served) if served else 0} cameras at 5 fps (goal >= 16)")
        if args.json:
            figures = {"engine": runner.engine, "bare_fps": [bare, bare_again],
                       "model_alone_fps": model_alone, "bare_from_jpeg_fps": from_jpeg,
                       "service_fps": service, "ratio": service / bare_mean, "overload": rows,
                       "cameras": cameras}  # fmt: skip
            Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
