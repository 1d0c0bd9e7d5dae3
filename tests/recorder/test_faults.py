"""The recorder's faults, for real: a recorder process killed mid-clip, a full disk (a tiny tmpfs),
and the store on PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from prometheus_client import CollectorRegistry

from recorder.metrics import RecordMetrics
from recorder.service import RecordService
from shared.config import RetentionConfig
from shared.eventstore import ClipState, EventStore
from tests.recorder.conftest import (
    FPS,
    S,
    cameras,
    probe,
    publish_frames,
    record_alert,
    record_config,
    run_burst,
)
from tests.support.postgres import PrivatePostgres
from tests.support.services import running, wait_for

REPO = Path(__file__).resolve().parents[2]


class LiveCamera:
    """Frames of ``camera`` published at FPS, stamped with the wall clock, on a thread."""

    def __init__(self, client: redis.Redis, camera: str, *, first_seq: int) -> None:
        self.client, self.camera, self.seq = client, camera, first_seq
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1 / FPS):
            publish_frames(self.client, self.camera, first_seq=self.seq, start_ns=time.time_ns(), count=1)
            self.seq += 1

    def __enter__(self) -> LiveCamera:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_a_killed_recorder_leaves_no_clip_under_the_final_name_and_a_restart_cuts_it(
    redis_client: redis.Redis, redis_url: str, store: EventStore, tmp_path: Path
) -> None:
    config = record_config(tmp_path, instance="killed", max_clip_s=60.0)
    settings = {"redis": {"url": redis_url}, "record": config.model_dump(mode="json"),
                "cameras": [{"id": "cam1", "url": "rtsp://example/cam1", "fps": FPS}]}  # fmt: skip
    (tmp_path / "vigil.yaml").write_text(yaml.safe_dump(settings))
    started_ns = time.time_ns()
    publish_frames(redis_client, "cam1", first_seq=0, start_ns=started_ns - 5 * S, count=25)  # the pre-roll
    record_alert(redis_client, "cam1", started_ns=started_ns, ended_ns=None, event_id="ev1")
    clips = Path(config.clips_dir)
    with LiveCamera(redis_client, "cam1", first_seq=25) as camera:
        process = subprocess.Popen(
            [sys.executable, "-m", "vigil", "record", "-c", str(tmp_path / "vigil.yaml")],
            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert wait_for(lambda: any(clips.rglob("*.part")), timeout=60), "no clip was started"
            time.sleep(1.0)
        finally:
            os.killpg(process.pid, signal.SIGKILL)  # the recorder and its ffmpeg, mid-clip
            process.wait(10)
    parts = list(clips.rglob("*.part"))
    assert parts and not list(clips.rglob("*.mp4"))  # only the temporary file
    record = store.get("ev1")
    assert record is not None and record.clip_state is ClipState.PENDING
    for part in parts:  # an hour old: the restarted recorder clears it away
        os.utime(part, (time.time() - 3600, time.time() - 3600))

    time.sleep(config.lease_ttl_s + 0.5)  # the dead recorder's lease on cam1 expires
    ended_ns = time.time_ns()
    publish_frames(redis_client, "cam1", first_seq=camera.seq, start_ns=ended_ns, count=int(4 * FPS))
    record_alert(redis_client, "cam1", started_ns=started_ns, ended_ns=ended_ns, event_id="ev1")
    run_burst(record_config(tmp_path, instance="restarted", max_clip_s=60.0), redis_client, store, "cam1")

    record = store.get("ev1")
    assert record is not None and record.clip_state is ClipState.DONE
    assert not list(clips.rglob("*.part"))
    expected_s = (ended_ns - started_ns) / S + config.pre_s + config.post_s
    assert abs(probe(clips / record.clip_path)["duration"] - expected_s) <= 1.0  # type: ignore[operator]


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs (root only): a disk that fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """A ballast file that takes all the free space."""
    ballast = folder / "ballast"
    with ballast.open("wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return ballast


def test_a_full_disk_fails_the_clip_is_counted_and_the_next_one_is_written(
    redis_client: redis.Redis, store: EventStore, tmp_path: Path, tiny_disk: Path
) -> None:
    t0 = time.time_ns() - 60 * S
    publish_frames(redis_client, "cam1", first_seq=0, start_ns=t0, count=200)
    config = record_config(tmp_path, clips_dir=str(tiny_disk / "clips"),
                           retention=RetentionConfig(min_free_bytes=0, interval_s=3600))  # fmt: skip
    (tiny_disk / "clips").mkdir()
    ballast = fill(tiny_disk)
    metrics = RecordMetrics(CollectorRegistry())
    service = RecordService(config, cameras("cam1"), client=redis_client, store=store, metrics=metrics)
    with running(service):
        record_alert(redis_client, "cam1", started_ns=t0 + 10 * S, ended_ns=t0 + 14 * S, event_id="full")
        assert wait_for(
            lambda: (r := store.get("full")) is not None and r.clip_state is not ClipState.PENDING, 30
        )
        failed = store.get("full")
        assert (
            failed is not None and failed.clip_state is ClipState.FAILED and failed.clip_error == "disk_full"
        )
        assert metrics.disk_full._value.get() >= 1  # type: ignore[attr-defined]
        assert not list((tiny_disk / "clips").rglob("*.mp4")) and not list(
            (tiny_disk / "clips").rglob("*.part")
        )

        ballast.unlink()  # space frees: the newest events are recorded again
        record_alert(redis_client, "cam1", started_ns=t0 + 25 * S, ended_ns=t0 + 27 * S, event_id="after")
        assert wait_for(lambda: (r := store.get("after")) is not None and r.clip_state is ClipState.DONE, 30)
    assert metrics.clips_written._value.get() == 1  # type: ignore[attr-defined]


def test_the_recorder_on_postgresql(
    redis_client: redis.Redis, postgres: PrivatePostgres, tmp_path: Path
) -> None:
    store = EventStore.open(postgres.new_database())
    t0 = time.time_ns() - 60 * S
    publish_frames(redis_client, "cam1", first_seq=0, start_ns=t0, count=50)
    record_alert(redis_client, "cam1", started_ns=t0 + 4 * S, ended_ns=t0 + 5 * S, event_id="ev1")
    config = record_config(tmp_path)
    run_burst(config, redis_client, store, "cam1")
    record = store.get("ev1")
    store.close()
    assert record is not None and record.clip_state is ClipState.DONE
    assert probe(Path(config.clips_dir) / record.clip_path)["codec_name"] == "h264"  # type: ignore[operator]
