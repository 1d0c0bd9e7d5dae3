"""``vigil demo``: the whole pipeline (ingest → detect → alerts) on the bundled sample clip.

It runs the three services on threads of one process, uses the Redis named by ``VIGIL_REDIS_URL``
when that answers (else an embedded one it removes at exit), prints alerts as a subscriber receives
them, and ends with a summary (and, with ``video``, the clip annotated with the detections).
:func:`run_demo` reads as its steps: reset the streams, build the services, watch until quiet,
summarise, write the video.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import redis

from alerts.service import AlertService
from alerts.subscriber import AlertSubscriber
from detector.runner import DetectorRunner
from detector.service import DetectorService
from ingest.service import IngestService
from recorder.service import RecordService
from shared import keys
from shared.config import (
    AlertsConfig,
    CameraConfig,
    DetectorConfig,
    IngestConfig,
    RecordConfig,
    RedisConfig,
    RegionsConfig,
    WebConfig,
)
from shared.eventstore import EventStore
from shared.imaging import caption, decode_bgr, draw_boxes
from shared.redis import EmbeddedRedis, answers, connect, free_port
from shared.schemas import AlertEvent, Detections, Frame
from vigil.console import describe
from web.console import Console
from web.service import WebService

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "pistols.mp4"
QUIET_S = 4.0
"""The run ends when ingest has finished and nothing new was detected for this long."""
SUBSCRIBE_SETTLE_S = 1.0
"""Time for the subscription to reach the publisher before the first frame is read."""
DEMO_FPS = 5
DEMO_SCORE_THRESH = 0.25


@dataclass(frozen=True)
class DemoOptions:
    sample: str | None = None
    """Video file to play (default: the bundled ``samples/pistols.mp4``)."""
    cameras: int = 1
    as_json: bool = False
    video: str | None = None
    """Also write the first camera's frames, annotated, to this .mp4."""
    weights: str | None = None
    metrics_port: int | None = None
    """Serve ingest's, the detector's and the alerts service's /metrics on this port and the next
    two of 127.0.0.1 (else on free ports nobody is told about)."""
    web: bool = True
    """Also record clips and serve the console (docs/web.md) on loopback, and print its URL."""
    web_port: int = 8080
    """The console's port (a free one if it is taken)."""


@dataclass
class DemoServices:
    ingest: IngestService
    detector: DetectorService
    alerts: AlertService
    alerts_endpoint: str


@dataclass
class Summary:
    started: float = field(default_factory=time.monotonic)
    alerts: list[tuple[AlertEvent, float]] = field(default_factory=list)
    """Each event with the seconds from its frame's capture to its arrival here."""

    def print(self, client: redis.Redis, cameras: list[str], processed: int, skipped: int) -> None:
        seconds = time.monotonic() - self.started
        streams = map(keys.detections_stream, cameras)
        detections = [Detections.decode(f) for stream in streams for _id, f in client.xrange(stream)]
        published = sum(len(client.xrange(keys.frames_stream(camera))) for camera in cameras)
        latencies = sorted(d.timings_ms["total"] for d in detections)
        alert_latencies = sorted(s for e, s in self.alerts if e.kind == "started")
        print("\nsummary")
        print(
            f"  frames ingested {published}, processed {processed}, skipped {skipped} without motion "
            f"in {seconds:.1f} s ({processed / seconds:.1f} frames/s)"
        )
        print(
            f"  objects detected {sum(len(d.objects) for d in detections)}; "
            f"alerts {sum(e.kind == 'started' for e, _ in self.alerts)} started, "
            f"{sum(e.kind == 'ended' for e, _ in self.alerts)} ended"
        )
        if latencies:
            print(f"  capture → detections published: p50 {_pct(latencies, 50):.0f} ms, "
                  f"p99 {_pct(latencies, 99):.0f} ms")  # fmt: skip
        if alert_latencies:
            print(f"  capture → alert received: p50 {1000 * _pct(alert_latencies, 50):.0f} ms, "
                  f"p99 {1000 * _pct(alert_latencies, 99):.0f} ms")  # fmt: skip


def run_demo(options: DemoOptions) -> int:
    clip = Path(options.sample) if options.sample else SAMPLE
    if not clip.is_file():
        print(f"vigil demo: sample clip not found: {clip}", file=sys.stderr)
        return 2
    cameras = tuple(
        CameraConfig(id=f"demo-{i + 1}", url=str(clip), fps=DEMO_FPS) for i in range(options.cameras)
    )
    ids = [camera.id for camera in cameras]
    print(
        f"vigil demo: loading the detector ({options.weights or 'the shipped pistol detector'})", flush=True
    )
    runner = DetectorRunner(options.weights, score_thresh=DEMO_SCORE_THRESH)
    with demo_redis() as url:
        client = connect(RedisConfig(url=url))
        reset_streams(client, ids)
        services = build_services(client, cameras, runner, metrics_port=options.metrics_port)
        with contextlib.ExitStack() as stack:
            if options.web:
                console_url = stack.enter_context(demo_console(client, cameras, port=options.web_port))
                print(f"vigil demo: console (live view, alerts, clips) on {console_url}", flush=True)
            print(
                f"vigil demo: {len(ids)} camera(s) playing {clip.name} at real time into {url}; alerts:",
                flush=True,
            )
            summary = watch_until_quiet(services, as_json=options.as_json)
            summary.print(client, ids, services.detector.processed, services.detector.skipped)
            if options.video:
                count = write_video(client, ids[0], Path(options.video))
                print(f"  annotated video: {options.video} ({count} frames)")
            if options.web and sys.stdin.isatty() and sys.stdout.isatty():
                print(f"vigil demo: the console stays on {console_url} (alerts and clips); Ctrl-C ends it",
                      flush=True)  # fmt: skip
                with contextlib.suppress(KeyboardInterrupt):
                    threading.Event().wait()
    return 0


@contextlib.contextmanager
def demo_console(client: redis.Redis, cameras: tuple[CameraConfig, ...], *, port: int) -> Iterator[str]:
    """The recorder (clips and an event store in a temporary folder, removed at exit) and the
    console on loopback without a login (``web.host`` 127.0.0.1): yields the console's URL."""
    with tempfile.TemporaryDirectory(prefix="vigil-demo-") as folder:
        record = RecordConfig(instance="demo", metrics_port=0, store_url=f"sqlite:///{folder}/events.db",
                              clips_dir=f"{folder}/clips")  # fmt: skip
        store = EventStore.open(record.store_url)
        try:
            web = WebConfig(port=port if _port_free(port) else 0, metrics_port=None)
            console = Console.build(web, client=client, store=store, clips_dir=Path(record.clips_dir))
            services = (RecordService(record, cameras, client=client, store=store), WebService(web, console))
            threads = [_thread(services[0].run, "record"), _thread(services[1].run, "web")]
            try:
                yield services[1].url
            finally:
                for service in services:
                    service.stop()
                for thread in threads:
                    thread.join(timeout=30)
        finally:
            store.close()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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


def reset_streams(client: redis.Redis, cameras: list[str]) -> None:
    """Forget an earlier demo's frames, detections, alerts and cursors: every run starts alike."""
    client.delete(
        keys.ALERTS, keys.ALERTS_FORWARDED, *map(keys.detections_stream, cameras),
        *map(keys.frames_stream, cameras), *map(keys.alerts_cursor_key, cameras),
    )  # fmt: skip


def build_services(
    client: redis.Redis,
    cameras: tuple[CameraConfig, ...],
    runner: DetectorRunner,
    *,
    metrics_port: int | None,
    regions: RegionsConfig | None = None,
) -> DemoServices:
    """Ingest in burst mode (it ends with the clip), the detector (with ``regions``, default off)
    and the alerts service, all named ``demo``; their metrics on ``metrics_port`` and the next two
    ports when given."""
    ports = (metrics_port, metrics_port + 1, metrics_port + 2) if metrics_port else (0, 0, 0)
    common = {"metrics_host": "127.0.0.1", "instance": "demo"}
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    services = DemoServices(
        ingest=IngestService(
            IngestConfig(**common, metrics_port=ports[0], stream_maxlen=10_000),
            cameras,
            client=client,
            burst=True,
        ),
        detector=DetectorService(
            DetectorConfig(
                **common,
                metrics_port=ports[1],
                max_batch=4,
                max_wait_ms=50,
                regions=regions or RegionsConfig(),
            ),
            [camera.id for camera in cameras],
            client=client,
            runner=runner,
        ),
        alerts=AlertService(
            AlertsConfig(**common, metrics_port=ports[2], publish_endpoint=endpoint),
            cameras,
            client=client,
            forward_grace_s=0.2,
        ),
        alerts_endpoint=endpoint,
    )
    if metrics_port:
        print(f"vigil demo: metrics on http://127.0.0.1:{ports[0]}/metrics (ingest), :{ports[1]} (detector), "
              f":{ports[2]} (alerts)", flush=True)  # fmt: skip
    return services


def watch_until_quiet(services: DemoServices, *, as_json: bool) -> Summary:
    """Run the services, print each alert as a subscriber receives it, and stop them all once ingest
    has finished and the detector has processed nothing new for :data:`QUIET_S` (or on Ctrl-C)."""
    summary = Summary()
    threads = [_thread(services.alerts.run, "alerts"), _thread(services.detector.run, "detect")]
    with AlertSubscriber([services.alerts_endpoint]) as subscriber:
        time.sleep(SUBSCRIBE_SETTLE_S)
        ingest = _thread(services.ingest.run, "ingest")
        last_change, last_processed = time.monotonic(), -1
        try:
            while ingest.is_alive() or time.monotonic() - last_change <= QUIET_S:
                for event in subscriber.events(timeout_s=0.5):
                    summary.alerts.append((event, (time.time_ns() - event.ts_ns) / 1e9))
                    print(event.to_json() if as_json else describe(event), flush=True)
                if services.detector.processed != last_processed:
                    last_change, last_processed = time.monotonic(), services.detector.processed
        except KeyboardInterrupt:
            services.ingest.stop()
    for service in (services.detector, services.alerts):
        service.stop()
    for thread in threads:
        thread.join(timeout=30)
    return summary


def write_video(client: redis.Redis, camera: str, path: Path) -> int:
    """The camera's frames with their detections drawn (frames without detections as they are)."""
    entries = client.xrange(keys.detections_stream(camera))
    detections = {d.seq: d.objects for d in (Detections.decode(f) for _i, f in entries)}
    writer = None
    count = 0
    for _id, fields in client.xrange(keys.frames_stream(camera)):
        frame = Frame.decode(fields)
        objects = detections.get(frame.seq, ())
        image = draw_boxes(decode_bgr(frame), [o.box for o in objects], [caption(o) for o in objects])
        if writer is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = cv2.VideoWriter(
                str(path), cv2.VideoWriter_fourcc(*"mp4v"), DEMO_FPS, (frame.width, frame.height)
            )
        writer.write(image)
        count += 1
    if writer is not None:
        writer.release()
    return count


def _pct(ordered: list[float], percent: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


def _thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
