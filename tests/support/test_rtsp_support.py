"""Smoke tests for the RTSP test server used by the ingest tests (OpenCV/FFmpeg as client)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from .media import RtspServer, make_h264_clip

FPS = 25
WIDTH, HEIGHT = 640, 360
CLIP_SECONDS = 4.0
READ_SECONDS = 6.0  # longer than the clip: frames keep coming only if the server loops
# OpenCV's FFmpeg backend buffers ~1 s of stream while probing it in open(), so the first
# reads return at decode speed; measure the pace only after that backlog is drained.
WARMUP_SECONDS = 2.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 s 640x360 25 fps H.264 clip."""
    path = tmp_path_factory.mktemp("rtsp") / "clip.mp4"
    return make_h264_clip(path, seconds=CLIP_SECONDS, fps=FPS, width=WIDTH, height=HEIGHT)


@pytest.fixture
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Select the RTSP transport for OpenCV's FFmpeg backend (default tcp)."""
    name = getattr(request, "param", "tcp")
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{name}")
    return name


def open_capture(url: str) -> cv2.VideoCapture:
    """Open ``url`` with OpenCV's FFmpeg backend."""
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG)


def read_for(capture: cv2.VideoCapture, seconds: float) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (seconds since the first read, frame) until ``seconds`` have passed."""
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        ok, frame = capture.read()
        if not ok:
            pytest.fail(f"read failed after {elapsed:.2f} s")
        yield elapsed, frame


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["tcp", "udp"], indirect=True)
def test_streams_clip_in_a_loop_at_real_time_pace(clip: Path, transport: str) -> None:
    with RtspServer(clip) as server:
        capture = open_capture(server.url)
        try:
            assert capture.isOpened(), f"cannot open {server.url} over {transport}"
            frames = list(read_for(capture, READ_SECONDS))
        finally:
            capture.release()

    times = [t for t, _ in frames]
    assert all(frame.shape == (HEIGHT, WIDTH, 3) for _, frame in frames)
    # More frames than the clip holds: the server looped instead of ending the stream.
    assert len(frames) > CLIP_SECONDS * FPS * 1.2, f"only {len(frames)} frames"
    steady = [t for t in times if t >= WARMUP_SECONDS]
    rate = len(steady) / (READ_SECONDS - WARMUP_SECONDS)
    assert rate == pytest.approx(FPS, rel=0.15), f"{rate:.1f} fps, expected about {FPS}"
    gaps = np.diff(steady)
    assert gaps.max() < 0.5, f"stream stalled for {gaps.max():.2f} s (loop seam?)"
    first, last = frames[0][1], frames[-1][1]
    assert not np.array_equal(first, last), "frames do not change"


@pytest.mark.timeout(60)
def test_basic_auth_required(clip: Path, transport: str) -> None:
    with RtspServer(clip, user="vigil", password="s3cr3t pw") as server:
        assert "s3cr3t%20pw@" in server.url_with_credentials
        assert "@" not in server.url

        with_credentials = open_capture(server.url_with_credentials)
        try:
            assert with_credentials.isOpened(), "credentials were refused"
            ok, frame = with_credentials.read()
            assert ok
            assert frame.shape == (HEIGHT, WIDTH, 3)
        finally:
            with_credentials.release()

        wrong_password = server.url_with_credentials.replace("s3cr3t", "wrong")
        for url in (server.url, wrong_password):
            capture = open_capture(url)
            try:
                assert not capture.isOpened(), f"{url} was let in"
            finally:
                capture.release()


@pytest.mark.timeout(60)
def test_restart_and_kill_keep_the_port(clip: Path, transport: str) -> None:
    server = RtspServer(clip)
    port = server.port

    def kill_then_start() -> None:
        server.kill()
        server.start()

    try:
        for action in (server.start, server.restart, kill_then_start):
            action()
            assert server.running
            assert server.port == port
            capture = open_capture(server.url)
            try:
                assert capture.read()[0], f"no frame after {action.__name__}"
            finally:
                capture.release()
    finally:
        server.stop()
    assert not server.running
