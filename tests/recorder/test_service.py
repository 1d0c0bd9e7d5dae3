"""RecordService on real Redis, real ffmpeg and a real SQLite store: a clip per alert, probed."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import pytest
import redis
from prometheus_client import CollectorRegistry

from recorder.metrics import RecordMetrics
from recorder.service import RecordService
from shared.eventstore import ClipState, EventStore
from tests.recorder.conftest import (
    FPS,
    S,
    cameras,
    jpeg,
    picture,
    probe,
    publish_frames,
    record_alert,
    record_config,
    run_burst,
)


def test_a_clip_per_alert_from_pre_roll_to_post_roll(
    redis_client: redis.Redis, store: EventStore, tmp_path: Path
) -> None:
    t0 = time.time_ns() - 60 * S  # a past timeline: the window is over once its frames are read
    publish_frames(redis_client, "cam1", first_seq=0, start_ns=t0, count=150)
    snapshot = jpeg(picture(50))
    record_alert(
        redis_client, "cam1", started_ns=t0 + 10 * S, ended_ns=t0 + 15 * S, event_id="ev1", snapshot=snapshot
    )
    metrics = RecordMetrics(CollectorRegistry())
    config = record_config(tmp_path)
    RecordService(
        config, cameras("cam1"), client=redis_client, store=store, metrics=metrics, burst=True
    ).run()

    record = store.get("ev1")
    assert record is not None and record.clip_state is ClipState.DONE, record
    assert record.ended_ms == (t0 + 15 * S) // 1_000_000
    clip = Path(config.clips_dir) / record.clip_path  # type: ignore[operator]
    assert clip.name == "ev1.mp4" and clip.parent.parent.name == "cam1"
    assert record.clip_bytes == clip.stat().st_size
    # pre_s 3 before the alert to post_s 2 after its end: 7 s to 17 s of the timeline, 10 s at 5 fps
    assert abs(record.clip_start_ms - (t0 + 7 * S) // 1_000_000) <= 1000 / FPS  # type: ignore[operator]
    assert abs(record.clip_end_ms - (t0 + 17 * S) // 1_000_000) <= 1000 / FPS  # type: ignore[operator]
    found = probe(clip)
    assert (found["codec_name"], found["pix_fmt"], found["width"], found["height"]) == (
        "h264",
        "yuv420p",
        640,
        480,
    )
    assert abs(found["duration"] - 10.0) <= 0.5
    assert abs(found["nb_read_frames"] - 10 * FPS) <= 2
    head = clip.read_bytes()[:65536]
    assert 0 <= head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head  # +faststart: index first
    assert (Path(config.clips_dir) / record.snapshot_path).read_bytes() == snapshot  # type: ignore[operator]
    assert not list(Path(config.clips_dir).rglob("*.part"))
    assert metrics.clips_written._value.get() == 1  # type: ignore[attr-defined]
    assert metrics.clip_bytes._value.get() == record.clip_bytes + len(snapshot)  # type: ignore[attr-defined]


def test_boxes_are_drawn_from_the_detections(
    redis_client: redis.Redis, store: EventStore, tmp_path: Path
) -> None:
    t0 = time.time_ns() - 60 * S
    publish_frames(redis_client, "cam1", first_seq=0, start_ns=t0, count=60, boxes=True)
    record_alert(redis_client, "cam1", started_ns=t0 + 5 * S, ended_ns=t0 + 6 * S, event_id="ev1")
    config = record_config(tmp_path, draw_boxes=True)
    run_burst(config, redis_client, store, "cam1")
    record = store.get("ev1")
    assert record is not None and record.clip_state is ClipState.DONE
    capture = cv2.VideoCapture(str(Path(config.clips_dir) / record.clip_path))  # type: ignore[operator]
    ok, image = capture.read()
    capture.release()
    assert ok
    b, g, r = (int(v) for v in image[200, 100])  # on the box's left edge (x=100), drawn in red
    assert r > 150 and g < 110 and b < 110, (b, g, r)


def test_an_alert_that_does_not_end_stops_at_max_clip_s(
    redis_client: redis.Redis, store: EventStore, tmp_path: Path
) -> None:
    t0 = time.time_ns() - 120 * S
    publish_frames(redis_client, "cam1", first_seq=0, start_ns=t0, count=300)
    record_alert(redis_client, "cam1", started_ns=t0 + 10 * S, ended_ns=None, event_id="ev1")
    config = record_config(tmp_path, max_clip_s=8.0)
    run_burst(config, redis_client, store, "cam1")
    record = store.get("ev1")
    assert record is not None and record.clip_state is ClipState.DONE and record.ended_ms is None
    assert abs(probe(Path(config.clips_dir) / record.clip_path)["duration"] - 8.0) <= 0.5  # type: ignore[operator]


def test_frames_gone_from_the_stream_fail_the_clip_and_the_rest_go_on(
    redis_client: redis.Redis, store: EventStore, tmp_path: Path
) -> None:
    t0 = time.time_ns() - 600 * S
    publish_frames(redis_client, "cam1", first_seq=0, start_ns=t0 + 100 * S, count=50)
    record_alert(redis_client, "cam1", started_ns=t0, ended_ns=t0 + S, event_id="old")  # its frames are gone
    record_alert(redis_client, "cam1", started_ns=t0 + 103 * S, ended_ns=t0 + 104 * S, event_id="new")
    run_burst(record_config(tmp_path), redis_client, store, "cam1")
    old, new = store.get("old"), store.get("new")
    assert old is not None and old.clip_state is ClipState.FAILED and old.clip_error == "frames_gone"
    assert new is not None and new.clip_state is ClipState.DONE


def test_only_owned_cameras_are_cut_but_every_event_is_stored(
    redis_client: redis.Redis, store: EventStore, tmp_path: Path
) -> None:
    t0 = time.time_ns() - 60 * S
    for camera in ("cam1", "cam2"):
        publish_frames(redis_client, camera, first_seq=0, start_ns=t0, count=50)
        record_alert(
            redis_client, camera, started_ns=t0 + 4 * S, ended_ns=t0 + 5 * S, event_id=f"ev-{camera}"
        )
    run_burst(record_config(tmp_path), redis_client, store, "cam1")
    mine, other = store.get("ev-cam1"), store.get("ev-cam2")
    assert mine is not None and mine.clip_state is ClipState.DONE
    assert other is not None and other.clip_state is ClipState.PENDING  # cam2's owner will cut it
    assert other.ended_ms is not None


@pytest.mark.parametrize("bad", [{"v": "2", "event": "{not json"}, {"v": "1", "event": "{}"}])
def test_malformed_history_entries_are_counted_and_stepped_over(
    redis_client: redis.Redis, store: EventStore, tmp_path: Path, bad: dict
) -> None:
    from shared import keys

    redis_client.xadd(keys.ALERTS, bad)
    metrics = RecordMetrics(CollectorRegistry())
    RecordService(
        record_config(tmp_path),
        cameras("cam1"),
        client=redis_client,
        store=store,
        metrics=metrics,
        burst=True,
    ).run()
    assert (
        sum(
            sample.value
            for sample in metrics.malformed.collect()[0].samples
            if sample.name.endswith("_total")
        )
        == 1
    )
    assert redis_client.xpending(keys.ALERTS, keys.RECORD_GROUP)["pending"] == 0
