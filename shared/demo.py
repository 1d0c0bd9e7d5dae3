"""``vigil demo``: the whole pipeline (ingest → detect → alerts) on the bundled sample clip.

Like ``shared/cli.py`` this is a composition root: it may import the services. It runs the three
services on threads of one process, uses the Redis named by ``VIGIL_REDIS_URL`` when that answers
(else an embedded one it removes at exit), prints alerts as a subscriber receives them, and ends
with a summary (and, with ``--video``, the clip annotated with the detections).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from shared import keys
from shared.config import AlertsConfig, CameraConfig, DetectorConfig, IngestConfig, RedisConfig
from shared.redis import EmbeddedRedis, answers, connect, free_port
from shared.schemas import AlertEvent, Detections, Frame

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "pistols.mp4"
QUIET_S = 4.0
"""The run ends when ingest has finished and nothing new was detected for this long."""


@contextlib.contextmanager
def demo_redis() -> Iterator[str]:
    """The configured Redis if it answers, else an embedded one for the duration."""
    url = os.environ.get("VIGIL_REDIS_URL", "")
    if url and answers(url):
        yield url
        return
    if url:
        print("vigil demo: VIGIL_REDIS_URL does not answer; starting an embedded Redis", file=sys.stderr)
    with EmbeddedRedis() as embedded:
        yield embedded.url


@dataclass
class Summary:
    started: float = field(default_factory=time.monotonic)
    alerts: list[tuple[AlertEvent, float]] = field(default_factory=list)
    """Each event with the seconds from its frame's capture to its arrival here."""

    def print(self, client: redis.Redis, cameras: list[str], processed: int) -> None:
        seconds = time.monotonic() - self.started
        detections = [Detections.decode(f) for _id, f in client.xrange(keys.DETECTIONS)]
        published = sum(len(client.xrange(keys.frames_stream(camera))) for camera in cameras)
        latencies = sorted(d.timings_ms["total"] for d in detections)
        alert_latencies = sorted(s for e, s in self.alerts if e.kind == "started")
        print("\nsummary")
        print(
            f"  frames ingested {published}, processed {processed} in {seconds:.1f} s "
            f"({processed / seconds:.1f} frames/s)"
        )
        print(
            f"  objects detected {sum(len(d.objects) for d in detections)}; "
            f"alerts {sum(e.kind == 'started' for e, _ in self.alerts)} started, "
            f"{sum(e.kind == 'ended' for e, _ in self.alerts)} ended"
        )
        if latencies:
            print(
                f"  capture → detections published: p50 {_pct(latencies, 50):.0f} ms, "
                f"p99 {_pct(latencies, 99):.0f} ms"
            )
        if alert_latencies:
            print(
                f"  capture → alert received: p50 {1000 * _pct(alert_latencies, 50):.0f} ms, "
                f"p99 {1000 * _pct(alert_latencies, 99):.0f} ms"
            )


def _pct(ordered: list[float], percent: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


def _thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def run_demo(
    *,
    sample: str | None,
    cameras: int,
    as_json: bool,
    video: str | None,
    weights: str | None,
    metrics_port: int | None = None,
) -> int:
    """``metrics_port``: serve ingest's, the detector's and the alerts service's /metrics on it and
    the next two ports of 127.0.0.1 (else on free ports nobody is told about)."""
    from alerts.service import AlertService
    from alerts.subscriber import AlertSubscriber
    from detector.runner import DetectorRunner
    from detector.service import DetectorService
    from ingest.service import IngestService
    from shared.cli import describe

    clip = Path(sample) if sample else SAMPLE
    if not clip.is_file():
        print(f"vigil demo: sample clip not found: {clip}", file=sys.stderr)
        return 2
    camera_configs = tuple(CameraConfig(id=f"demo-{i + 1}", url=str(clip), fps=5) for i in range(cameras))
    ids = [camera.id for camera in camera_configs]
    print(f"vigil demo: loading the detector ({weights or 'the shipped pistol detector'})", flush=True)
    runner = DetectorRunner(weights, score_thresh=0.25)
    with demo_redis() as url:
        client = connect(RedisConfig(url=url))
        for key in [
            keys.DETECTIONS,
            keys.ALERTS,
            *map(keys.frames_stream, ids),
            *map(keys.alerts_cursor_key, ids),
        ]:
            client.delete(key)
        client.delete(keys.ALERTS_FORWARDED)
        port = free_port()
        ingest_port, detector_port, alerts_port = (
            (metrics_port, metrics_port + 1, metrics_port + 2) if metrics_port else (0, 0, 0)
        )
        common = {"metrics_host": "127.0.0.1", "instance": "demo"}
        alerts = AlertService(
            AlertsConfig(**common, metrics_port=alerts_port, publish_endpoint=f"tcp://127.0.0.1:{port}"),
            camera_configs,
            client=client,
            forward_grace_s=0.2,
        )
        detector = DetectorService(
            DetectorConfig(**common, metrics_port=detector_port, max_batch=4, max_wait_ms=50),
            ids,
            client=client,
            runner=runner,
        )
        ingest = IngestService(
            IngestConfig(**common, metrics_port=ingest_port, stream_maxlen=10_000),
            camera_configs,
            client=client,
            burst=True,
        )
        summary = Summary()
        if metrics_port:
            print(
                f"vigil demo: metrics on http://127.0.0.1:{ingest_port}/metrics (ingest), :{detector_port} "
                f"(detector), :{alerts_port} (alerts)",
                flush=True,
            )
        print(
            f"vigil demo: {cameras} camera(s) playing {clip.name} at real time into {url}; alerts:",
            flush=True,
        )
        threads = [_thread(alerts.run, "alerts"), _thread(detector.run, "detect")]
        with AlertSubscriber([f"tcp://127.0.0.1:{port}"]) as subscriber:
            time.sleep(1.0)  # the subscription reaches the publisher before frames flow
            ingest_thread = _thread(ingest.run, "ingest")
            last_change, last_processed = time.monotonic(), -1
            try:
                while True:
                    for event in subscriber.events(timeout_s=0.5):
                        summary.alerts.append((event, (time.time_ns() - event.ts_ns) / 1e9))
                        print(event.to_json() if as_json else describe(event), flush=True)
                    if detector.processed != last_processed:
                        last_change, last_processed = time.monotonic(), detector.processed
                    if not ingest_thread.is_alive() and time.monotonic() - last_change > QUIET_S:
                        break
            except KeyboardInterrupt:
                ingest.stop()
        for service in (detector, alerts):
            service.stop()
        for thread in threads:
            thread.join(timeout=30)
        summary.print(client, ids, detector.processed)
        if video:
            count = write_video(client, ids[0], runner.class_names, Path(video))
            print(f"  annotated video: {video} ({count} frames)")
    return 0


def write_video(client: redis.Redis, camera: str, class_names: tuple[str, ...], path: Path) -> int:
    """The camera's frames with their detections drawn (frames without detections as they are)."""
    import cv2
    import numpy as np

    detections = {
        d.seq: d
        for d in (Detections.decode(f) for _i, f in client.xrange(keys.DETECTIONS))
        if d.camera == camera
    }
    writer = None
    count = 0
    for _id, fields in client.xrange(keys.frames_stream(camera)):
        frame = Frame.decode(fields)
        image = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
        for obj in detections.get(frame.seq, Detections(camera, frame.seq, 0, 1, 1, "")).objects:
            x1, y1, x2, y2 = (round(v) for v in obj.box)
            cv2.rectangle(image, (x1, y1), (x2, y2), (0, 0, 255), 2)
            track = f" #{obj.track_id}" if obj.track_id is not None else ""
            cv2.putText(
                image,
                f"{obj.label}{track} {obj.score:.2f}",
                (x1, max(12, y1 - 5)),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.5,
                (0, 0, 255),
                1,
            )
        if writer is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(
                str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (frame.width, frame.height)
            )
        writer.write(image)
        count += 1
    if writer is not None:
        writer.release()
    return count
