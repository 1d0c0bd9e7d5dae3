"""Retention on a real store and real files: by age, by size per camera, by free space; oldest first."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from recorder.metrics import RecordMetrics
from recorder.retention import Retention
from shared.config import RetentionConfig
from shared.eventstore import ClipState, EventStore
from tests.recorder.conftest import S, event

DAY_S = 86_400
CLIP_BYTES = 400_000


def add_event(store: EventStore, clips: Path, event_id: str, *, age_s: float, camera: str = "cam1") -> None:
    started_ns = int((time.time() - age_s) * S)
    store.record_started(event("started", camera=camera, ts_ns=started_ns, first_seen_ns=started_ns,
                               event_id=event_id))  # fmt: skip
    for suffix in ("mp4", "jpg"):
        path = clips / camera / f"{event_id}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    store.set_clip(event_id, state=ClipState.DONE, path=f"{camera}/{event_id}.mp4", size_bytes=CLIP_BYTES)
    store.set_snapshot(event_id, path=f"{camera}/{event_id}.jpg", size_bytes=100)


def counted(metrics: RecordMetrics, reason: str) -> float:
    return metrics.deleted.labels(reason)._value.get()  # type: ignore[attr-defined]


def test_age_then_size_oldest_first(store: EventStore, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    add_event(store, clips, "ancient", age_s=40 * DAY_S)
    for index in range(4):
        add_event(store, clips, f"e{index}", age_s=100 - index)  # e0 oldest
    add_event(store, clips, "other-camera", age_s=200, camera="cam2")
    metrics = RecordMetrics(CollectorRegistry())
    config = RetentionConfig(max_age_days=30, max_bytes_per_camera=2**20, min_free_bytes=0)
    Retention(store, clips, config, metrics).run(["cam1"])

    assert store.get("ancient") is None and not (clips / "cam1" / "ancient.mp4").exists()
    for gone in ("e0", "e1"):  # 4 × 400 kB > 1 MiB: the two oldest go, 800 kB stay
        record = store.get(gone)
        assert record is not None and record.clip_state is ClipState.DELETED and record.clip_path is None
        assert not (clips / "cam1" / f"{gone}.mp4").exists() and not (clips / "cam1" / f"{gone}.jpg").exists()
    for kept in ("e2", "e3"):
        record = store.get(kept)
        assert record is not None and record.clip_state is ClipState.DONE
        assert (clips / "cam1" / f"{kept}.mp4").exists()
    assert store.media_bytes("cam1") == 2 * (CLIP_BYTES + 100) <= config.max_bytes_per_camera
    assert (clips / "cam2" / "other-camera.mp4").exists()  # not an owned camera: not this replica's
    assert (counted(metrics, "age"), counted(metrics, "size")) == (1, 2)
    assert metrics.deleted_bytes.labels("size")._value.get() == 2 * (CLIP_BYTES + 100)  # type: ignore[attr-defined]


def test_short_of_free_space_the_owned_cameras_oldest_media_go(store: EventStore, tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    for index in range(3):
        add_event(store, clips, f"e{index}", age_s=100 - index)
    metrics = RecordMetrics(CollectorRegistry())
    config = RetentionConfig(min_free_bytes=2**62)  # never enough: everything owned goes, oldest first
    Retention(store, clips, config, metrics).run(["cam1"])
    assert [e.clip_state for e in store.query().events] == [ClipState.DELETED] * 3
    assert not list(clips.rglob("*.mp4")) and counted(metrics, "free_space") == 3
