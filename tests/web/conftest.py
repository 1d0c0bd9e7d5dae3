"""The console under test: a real ``WebService`` (uvicorn on a loopback port, on a thread) over
the test Redis and an SQLite event store in the test's folder, with a login configured; helpers
that put real frames, detections and alerts into Redis (the schemas' ``encode()``) and an event
with a real H.264 clip into the store."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis

from shared import keys
from shared.config import WebConfig
from shared.eventstore import ClipState, EventStore
from shared.registry import CameraStatus, write_status
from shared.schemas import AlertEvent, Detection, Detections, Frame
from tests.support.media import make_h264_clip
from tests.support.services import running
from web.console import Console
from web.passwords import hash_password
from web.service import WebService

USER, PASSWORD = "admin", "correct horse battery"
CAMERA = "cam1"
WIDTH, HEIGHT = 640, 360
BOX = (200.0, 100.0, 360.0, 260.0)
EVENT_ID = "0123456789abcdef0123"


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


@dataclass
class Served:
    service: WebService
    console: Console
    clips_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.service.port}"

    def client(self, **options: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, follow_redirects=False, **options)

    @contextmanager
    def logged_in(self) -> Iterator[httpx.Client]:
        """A client holding a session cookie, its CSRF token in ``client.headers``."""
        with self.client() as client:
            reply = client.post("/login", data={"user": USER, "password": PASSWORD, "next": "/"})
            assert reply.status_code == 303, reply.text
            page = client.get("/events")
            token = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
            client.headers["X-CSRF-Token"] = token
            yield client


Serve = Callable[..., Served]


@pytest.fixture
def serve(redis_client: redis.Redis, tmp_path: Path, password_hash: str) -> Iterator[Serve]:
    """Start the console: ``serve(**web_config_fields)``; by default with the login configured."""
    started: list[tuple[object, EventStore]] = []

    def start(**fields: object) -> Served:
        settings = {"port": 0, "metrics_port": None, "password_hash": password_hash, **fields}
        config = WebConfig(**settings)
        store = EventStore.open(f"sqlite:///{tmp_path}/events-{len(started)}.db")
        clips_dir = tmp_path / "clips"
        clips_dir.mkdir(exist_ok=True)
        console = Console.build(config, client=redis_client, store=store, clips_dir=clips_dir)
        service = WebService(config, console)
        context = running(service)
        context.__enter__()
        started.append((context, store))
        deadline = time.monotonic() + 10
        while not service.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return Served(service, console, clips_dir)

    yield start
    for context, store in reversed(started):
        context.__exit__(None, None, None)
        store.close()


def register(client: redis.Redis, camera: str = CAMERA, *, state: str = "streaming", error: str = "") -> None:
    write_status(
        client,
        CameraStatus(
            camera=camera,
            state=state,
            owner="ingest-1",
            updated_ns=time.time_ns(),
            last_frame_ns=time.time_ns(),
            fps=5.0,
            width=WIDTH,
            height=HEIGHT,
            last_error=error,
        ),
    )


def grey_jpeg(level: int = 90) -> bytes:
    image = np.full((HEIGHT, WIDTH, 3), level, np.uint8)
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def publish_frame(client: redis.Redis, seq: int, *, camera: str = CAMERA, ts_ns: int | None = None) -> Frame:
    frame = Frame(
        camera=camera,
        seq=seq,
        ts_ns=ts_ns or time.time_ns(),
        pts_ms=seq * 200,
        width=WIDTH,
        height=HEIGHT,
        codec="jpeg",
        data=grey_jpeg(),
    )
    client.xadd(keys.frames_stream(camera), frame.encode(), maxlen=100, approximate=True)
    return frame


def publish_detections(client: redis.Redis, frame: Frame, *, box: tuple = BOX, track_id: int = 7) -> None:
    objects = (Detection(label="pistol", class_id=0, score=0.91, box=box, track_id=track_id),)
    message = Detections(
        camera=frame.camera,
        seq=frame.seq,
        ts_ns=frame.ts_ns,
        width=WIDTH,
        height=HEIGHT,
        model="test",
        objects=objects,
        timings_ms={"queue_wait": 1, "inference": 5, "total": 6},
    )
    client.xadd(keys.detections_stream(frame.camera), message.encode())


def alert(
    event_id: str = EVENT_ID, *, camera: str = CAMERA, kind: str = "started", seq: int = 3
) -> AlertEvent:
    now = time.time_ns()
    box_norm = (BOX[0] / WIDTH, BOX[1] / HEIGHT, BOX[2] / WIDTH, BOX[3] / HEIGHT)
    return AlertEvent(
        event_id=event_id,
        kind=kind,
        rule="gun",
        severity="critical",
        camera=camera,  # type: ignore[arg-type]
        label="pistol",
        score=0.91,
        box=BOX,
        box_norm=box_norm,
        frame_width=WIDTH,
        frame_height=HEIGHT,
        track_id=7,
        first_seen_ns=now,
        ts_ns=now,
        seq=seq,
        snapshot=keys.snapshot_key(camera, event_id),
    )


def publish_alert(client: redis.Redis, event: AlertEvent) -> None:
    client.xadd(keys.ALERTS, event.encode())


def record_with_clip(served: Served, event: AlertEvent, *, seconds: float = 3.0) -> Path:
    """The event in the store with a done H.264 clip (made by ffmpeg) and a snapshot file, as the
    recorder leaves them (paths relative to the clips folder)."""
    store = served.console.store
    store.record_started(event)
    relative = Path(event.camera) / f"{event.event_id}.mp4"
    clip = make_h264_clip(served.clips_dir / relative, seconds=seconds, fps=5, width=WIDTH, height=HEIGHT)
    started_ms = event.ts_ns // 1_000_000
    store.set_clip(
        event.event_id,
        state=ClipState.DONE,
        path=str(relative),
        size_bytes=clip.stat().st_size,
        start_ms=started_ms - 1000,
        end_ms=started_ms + int(seconds * 1000) - 1000,
    )
    snapshot = relative.with_suffix(".jpg")
    (served.clips_dir / snapshot).write_bytes(grey_jpeg(120))
    store.set_snapshot(
        event.event_id, path=str(snapshot), size_bytes=(served.clips_dir / snapshot).stat().st_size
    )
    return clip
