"""Recorder test helpers: a camera's frames and detections in Redis, alert events in the history,
a recorder config on a temporary folder, and ffprobe's view of a clip."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis

from recorder.service import RecordService
from shared import keys
from shared.config import CameraConfig, RecordConfig, RetentionConfig
from shared.eventstore import EventStore
from shared.schemas import AlertEvent
from tests.support.messages import jpeg_frame, pistol_detections

FPS = 5.0
WIDTH, HEIGHT = 640, 480
BOX = (100.0, 100.0, 300.0, 300.0)
S = 1_000_000_000


def picture(index: int) -> np.ndarray:
    """A 640x480 test picture that changes every frame (a moving square over a gradient)."""
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[:, :, 1] = np.linspace(0, 200, WIDTH, dtype=np.uint8)[None, :]
    x = (index * 7) % (WIDTH - 60)
    image[200:260, x : x + 60] = (255, 255, 255)
    cv2.putText(image, str(index), (20, 460), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 0), 2)
    return image


def jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return data.tobytes()


def publish_frames(
    client: redis.Redis, camera: str, *, first_seq: int, start_ns: int, count: int, boxes: bool = False
) -> None:
    """``count`` frames at FPS from ``start_ns`` (and, with ``boxes``, a pistol on each)."""
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        seq, ts_ns = first_seq + i, start_ns + int(i * S / FPS)
        frame = jpeg_frame(camera, seq, ts_ns, jpeg(picture(seq)), width=WIDTH, height=HEIGHT)
        pipe.xadd(keys.frames_stream(camera), frame.encode())
        if boxes:
            message = pistol_detections(frame, BOX, track_id=7, model="test")
            pipe.xadd(keys.detections_stream(camera), message.encode())
    pipe.execute()


def event(
    kind: str,
    *,
    camera: str,
    ts_ns: int,
    first_seen_ns: int,
    event_id: str,
    track_id: int = 7,
    snapshot: str | None = None,
) -> AlertEvent:
    return AlertEvent(
        event_id=event_id,
        kind=kind,
        rule="gun",
        severity="critical",
        camera=camera,
        label="pistol",  # type: ignore[arg-type]
        score=0.9,
        box=BOX,
        box_norm=(BOX[0] / WIDTH, BOX[1] / HEIGHT, BOX[2] / WIDTH, BOX[3] / HEIGHT),
        frame_width=WIDTH,
        frame_height=HEIGHT,
        track_id=track_id,
        first_seen_ns=first_seen_ns,
        ts_ns=ts_ns,
        seq=0,
        snapshot=snapshot,
    )


def record_alert(
    client: redis.Redis,
    camera: str,
    *,
    started_ns: int,
    ended_ns: int | None,
    event_id: str,
    snapshot: bytes | None = None,
) -> None:
    """A started event (with its snapshot in Redis, as the alerts service stores it) and its end."""
    key = keys.snapshot_key(camera, event_id)
    if snapshot is not None:
        client.set(key, snapshot)
    started = event(
        "started",
        camera=camera,
        ts_ns=started_ns,
        first_seen_ns=started_ns - S,
        event_id=event_id,
        snapshot=key if snapshot is not None else None,
    )
    client.xadd(keys.ALERTS, started.encode())
    if ended_ns is not None:
        ended = event(
            "ended", camera=camera, ts_ns=ended_ns, first_seen_ns=started_ns - S, event_id=f"{event_id}-end"
        )
        client.xadd(keys.ALERTS, ended.encode())


def record_config(tmp_path: Path, **overrides: object) -> RecordConfig:
    settings: dict[str, object] = {
        "instance": "record-1",
        "metrics_port": None,
        "lease_ttl_s": 1.0,
        "store_url": f"sqlite:///{tmp_path}/events.db",
        "clips_dir": str(tmp_path / "clips"),
        "pre_s": 3.0,
        "post_s": 2.0,
        "max_clip_s": 30.0,
        "draw_boxes": False,
        "retention": RetentionConfig(min_free_bytes=0, interval_s=3600),
    }
    settings.update(overrides)
    return RecordConfig(**settings)  # type: ignore[arg-type]


def cameras(*ids: str) -> tuple[CameraConfig, ...]:
    return tuple(CameraConfig(id=camera, url=f"rtsp://example/{camera}", fps=FPS) for camera in ids)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EventStore]:
    opened = EventStore.open(f"sqlite:///{tmp_path}/events.db")
    yield opened
    opened.close()


def run_burst(
    config: RecordConfig, client: redis.Redis, store: EventStore, *camera_ids: str
) -> RecordService:
    service = RecordService(config, cameras(*camera_ids), client=client, store=store, burst=True)
    service.run()
    return service


def probe(path: Path) -> dict:
    """ffprobe's codec, pixel format, size, frame count and duration of the clip's video stream."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,pix_fmt,width,height,nb_read_frames:format=duration",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    found = json.loads(out)
    stream = found["streams"][0]
    return {
        **stream,
        "nb_read_frames": int(stream["nb_read_frames"]),
        "duration": float(found["format"]["duration"]),
    }
