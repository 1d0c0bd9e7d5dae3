"""Ingest from a real RTSP server (GStreamer's, from Debian) serving an H.264 clip."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import generate_latest

from ingest.service import IngestService
from shared import keys
from shared.config import CameraConfig
from shared.logs import register_url_secrets
from shared.registry import read_statuses
from tests.ingest.conftest import frames, ingest_config, metric
from tests.support.media import RtspServer, make_h264_clip
from tests.support.services import running, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def server(clip_720p: Path) -> Iterator[RtspServer]:
    with RtspServer(clip_720p) as rtsp:
        yield rtsp


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_rtsp_frames_arrive_with_metadata_at_the_target_fps(
    redis_client: redis.Redis, server: RtspServer, transport: str
) -> None:
    camera = CameraConfig(id="gate", url=server.url, fps=5, max_side=640, rtsp_transport=transport)  # type: ignore[arg-type]
    service = IngestService(ingest_config(), (camera,), client=redis_client)
    with running(service):
        # OpenCV buffers about a second while it probes the stream: measure after that.
        assert wait_for(lambda: len(frames(redis_client, "gate")) >= 5, 15)
        warm = frames(redis_client, "gate")[-1]
        assert wait_for(lambda: frames(redis_client, "gate")[-1].ts_ns >= warm.ts_ns + 8e9, 15)
    window = [f for f in frames(redis_client, "gate") if warm.ts_ns < f.ts_ns <= warm.ts_ns + 8e9]
    fps = len(window) / 8
    assert fps == pytest.approx(5, rel=0.15), f"sampled {fps:.2f} fps (±15 %: window edges, a loaded CI)"
    first = window[0]
    assert (first.camera, first.codec, first.width, first.height) == ("gate", "jpeg", 640, 360)
    assert [f.seq for f in window] == list(range(first.seq, first.seq + len(window)))
    pts_steps = [b.pts_ms - a.pts_ms for a, b in itertools.pairwise(window)]
    # sampled by stream time: every 5th frame of 25 fps. FFmpeg's RTSP timestamps jitter by a few
    # ms, and by up to ~30 ms on a starved CPU: each step stays within a source frame of 200 ms.
    assert all(160 <= step <= 240 for step in pts_steps), pts_steps
    assert sum(pts_steps) / len(pts_steps) == pytest.approx(200, abs=5)
    assert metric(service.metrics, "vigil_ingest_frames_read_total", camera="gate") >= 5 * len(window)


def test_server_outage_backs_off_and_recovers_without_restarting_ingest(
    redis_client: redis.Redis, server: RtspServer
) -> None:
    camera = CameraConfig(id="yard", url=server.url, fps=5, max_side=320)
    config = ingest_config(read_timeout_s=1.0, reconnect_base_s=0.2, reconnect_cap_s=1.6)
    service = IngestService(config, (camera,), client=redis_client)
    up = lambda: metric(service.metrics, "vigil_ingest_camera_up", camera="yard")  # noqa: E731
    reconnects = lambda: metric(service.metrics, "vigil_ingest_reconnects_total", camera="yard")  # noqa: E731
    with running(service):
        assert wait_for(lambda: up() == 1, 15)
        server.kill()
        assert wait_for(lambda: up() == 0, 10), "a dead server is noticed within the read timeout"
        assert wait_for(lambda: reconnects() >= 3, 15), "and retried, with backoff"
        [status] = read_statuses(redis_client)
        assert status.state in ("backoff", "connecting")
        assert "camera yard" in status.last_error
        before = len(frames(redis_client, "yard"))
        server.start()
        assert wait_for(lambda: up() == 1, 20), "the same ingest reconnects once the server is back"
        assert wait_for(lambda: len(frames(redis_client, "yard")) >= before + 5, 10)
    seqs = [f.seq for f in frames(redis_client, "yard")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_password_protected_camera_streams_and_never_leaks(
    redis_client: redis.Redis,
    clip_720p: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    password = "Pr1v4te-Pa55"
    with RtspServer(clip_720p, user="viewer", password=password) as server:
        good = CameraConfig(id="ok", url=server.url_with_credentials, fps=5, max_side=320)
        wrong = CameraConfig(
            id="bad", url=server.url_with_credentials.replace(password, password + "x"), fps=5
        )
        for camera in (good, wrong):
            register_url_secrets(camera.url)
        service = IngestService(ingest_config(), (good, wrong), client=redis_client)
        with caplog.at_level(logging.DEBUG), running(service):
            assert wait_for(lambda: len(frames(redis_client, "ok")) >= 5, 15)
            assert wait_for(
                lambda: metric(service.metrics, "vigil_ingest_reconnects_total", camera="bad") >= 2, 15
            )
            statuses = {s.camera: s for s in read_statuses(redis_client)}
    assert statuses["ok"].state == "streaming"
    assert "cannot connect" in statuses["bad"].last_error
    captured = capfd.readouterr()
    registry = [redis_client.hgetall(keys.camera_key(c)) for c in ("ok", "bad")]
    everything = " ".join(
        [caplog.text, captured.out, captured.err, generate_latest(service.metrics.registry).decode()]
        + [repr(row) for row in registry]
        + [repr(s) for s in statuses.values()]
    )
    assert password not in everything


@pytest.fixture(scope="module")
def clip_10fps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6 s 640x360 clip at 10 fps: the rate of the camera whose frames the old sampler skipped."""
    folder = tmp_path_factory.mktemp("clips")
    return make_h264_clip(folder / "10fps.mp4", seconds=6, fps=10, width=640, height=360)


def test_rtsp_at_the_servers_own_fps_skips_no_frame(redis_client: redis.Redis, clip_10fps: Path) -> None:
    """fps = the source's fps: RTP timestamp jitter must not make the sampler skip frames."""
    read = lambda: metric(service.metrics, "vigil_ingest_frames_read_total", camera="door")  # noqa: E731
    skipped = lambda: metric(service.metrics, "vigil_ingest_frames_skipped_total", camera="door")  # noqa: E731
    with RtspServer(clip_10fps) as server:
        camera = CameraConfig(id="door", url=server.url, fps=10, max_side=320)
        service = IngestService(ingest_config(), (camera,), client=redis_client)
        with running(service):
            assert wait_for(lambda: read() >= 150, 40), f"only {read():.0f} frames read"
    assert read() >= 150
    assert skipped() <= 0.01 * read(), f"{skipped():.0f} of {read():.0f} frames skipped"
    published = frames(redis_client, "door")
    assert len(published) >= 0.99 * read() - 1
