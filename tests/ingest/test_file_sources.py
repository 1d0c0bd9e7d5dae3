"""Ingest of real clips from files: metadata, sampling, codecs, loops and bad files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis

from ingest.service import IngestService
from shared.config import CameraConfig
from shared.registry import read_statuses
from tests.ingest.conftest import PEOPLE, VTEST, frames, ingest_config, metric, run_burst
from tests.support.services import running, wait_for


def test_real_cctv_clip_metadata_and_sampling(redis_client: redis.Redis) -> None:
    camera = CameraConfig(id="vtest", url=str(VTEST), fps=5, max_side=384, realtime=False)
    service = run_burst(redis_client, [camera], max_frames=40)
    out = frames(redis_client, "vtest")
    assert len(out) == 40
    assert [f.seq for f in out] == list(range(40))
    assert {(f.width, f.height, f.codec, f.camera) for f in out} == {(384, 288, "jpeg", "vtest")}
    # vtest.avi is 10 fps: sampled to 5 fps by its own timestamps, frames are 200 ms apart
    assert np.diff([f.pts_ms for f in out]).tolist() == [200] * 39
    image = cv2.imdecode(np.frombuffer(out[0].data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (288, 384, 3)
    assert metric(service.metrics, "vigil_ingest_frames_published_total", camera="vtest") == 40
    assert metric(service.metrics, "vigil_ingest_frames_read_total", camera="vtest") == pytest.approx(
        80, abs=1
    )
    [status] = read_statuses(redis_client)
    assert (status.state, status.frames_published, status.width) == ("ended", 40, 384)


def test_h264_clip_as_raw_frames(redis_client: redis.Redis) -> None:
    camera = CameraConfig(id="people", url=str(PEOPLE), fps=2, max_side=None, codec="raw", realtime=False)
    run_burst(redis_client, [camera], max_frames=5)
    out = frames(redis_client, "people")
    assert len(out) == 5
    assert {(f.width, f.height, f.codec) for f in out} == {(768, 432, "raw")}
    assert all(len(f.data) == 768 * 432 * 3 for f in out)
    assert np.diff([f.pts_ms for f in out]).tolist() == [500] * 4


def test_file_loop_keeps_time_and_seq_monotonic(redis_client: redis.Redis, tmp_path: Path) -> None:
    from tests.support.media import make_h264_clip

    clip = make_h264_clip(tmp_path / "short.mp4", seconds=2, fps=10, width=320, height=240)
    camera = CameraConfig(id="loop", url=str(clip), fps=5, loop=True, realtime=False)
    run_burst(redis_client, [camera], max_frames=25)  # 2.5 passes over a 10-frame-per-pass clip
    out = frames(redis_client, "loop")
    assert [f.seq for f in out] == list(range(25))
    assert np.all(np.diff([f.pts_ms for f in out]) > 0), "stream time keeps rising across loops"


def test_a_file_ends_without_loop(redis_client: redis.Redis, tmp_path: Path) -> None:
    from tests.support.media import make_h264_clip

    clip = make_h264_clip(tmp_path / "short.mp4", seconds=2, fps=10, width=320, height=240)
    run_burst(redis_client, [CameraConfig(id="once", url=str(clip), fps=5, realtime=False)])
    assert len(frames(redis_client, "once")) == 10


def test_seq_continues_after_a_restart(redis_client: redis.Redis) -> None:
    camera = CameraConfig(id="vtest", url=str(VTEST), fps=5, max_side=128, realtime=False)
    run_burst(redis_client, [camera], max_frames=5)
    run_burst(redis_client, [camera], max_frames=5)
    assert [f.seq for f in frames(redis_client, "vtest")] == list(range(10))


def truncated_copies(tmp_path: Path) -> tuple[Path, Path]:
    """An mp4 with its index at the front cut in half (plays until the cut), and one with the
    index at the end cut in half (unreadable)."""
    from tests.support.media import FFMPEG, make_h264_clip

    faststart = make_h264_clip(tmp_path / "fs.mp4", seconds=4, fps=10, width=320, height=240)
    index_last = tmp_path / "index_last.mp4"
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-y", "-i", str(faststart), "-c", "copy", str(index_last)], check=True
    )
    cut = []
    for source in (faststart, index_last):
        target = tmp_path / f"cut-{source.name}"
        data = source.read_bytes()
        target.write_bytes(data[: len(data) // 2])
        cut.append(target)
    return cut[0], cut[1]


def test_bad_files_are_counted_and_do_not_stop_the_good_camera(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video\n" * 100)
    plays_until_cut, unreadable = truncated_copies(tmp_path)
    cameras = [
        CameraConfig(id="good", url=str(VTEST), fps=5, max_side=128, realtime=False, loop=True),
        CameraConfig(id="text", url=str(not_video), fps=5, realtime=False),
        CameraConfig(id="cut", url=str(plays_until_cut), fps=5, realtime=False),
        CameraConfig(id="noindex", url=str(unreadable), fps=5, realtime=False),
        CameraConfig(id="missing", url=str(tmp_path / "nope.mp4"), fps=5),
    ]
    service = IngestService(ingest_config(), tuple(cameras), client=redis_client)
    with running(service):
        assert wait_for(
            lambda: metric(service.metrics, "vigil_ingest_reconnects_total", camera="text") >= 2, 10
        )
        assert wait_for(
            lambda: metric(service.metrics, "vigil_ingest_reconnects_total", camera="noindex") >= 2, 10
        )
        assert wait_for(lambda: len(frames(redis_client, "good")) >= 20, 10)
        statuses = {s.camera: s for s in read_statuses(redis_client)}
    assert "not a readable video" in statuses["text"].last_error
    assert "not a readable video" in statuses["noindex"].last_error
    assert "file not found" in statuses["missing"].last_error
    assert statuses["text"].state in ("backoff", "connecting")
    # the file cut in half plays its first half, then ends like any file
    assert 5 <= len(frames(redis_client, "cut")) <= 12
    assert statuses["cut"].state == "ended"
    assert metric(service.metrics, "vigil_ingest_camera_up", camera="text") == 0


def test_burst_run_gives_up_on_an_unreadable_file(redis_client: redis.Redis, tmp_path: Path) -> None:
    missing = CameraConfig(id="missing", url=str(tmp_path / "nope.mp4"), fps=5)
    run_burst(redis_client, [missing])  # returns instead of retrying forever
    [status] = read_statuses(redis_client)
    assert (status.state, status.last_error) == ("ended", "camera missing: file not found")
