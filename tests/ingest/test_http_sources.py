"""Ingest over HTTP: an MJPEG camera (multipart/x-mixed-replace) and an HLS playlist."""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis

from ingest.service import IngestService
from shared.config import CameraConfig
from tests.ingest.conftest import frames, ingest_config, metric
from tests.support.media import FFMPEG
from tests.support.services import running, wait_for

pytestmark = pytest.mark.slow
BOUNDARY = b"vigilframe"


class MjpegHandler(BaseHTTPRequestHandler):
    """Serves an endless MJPEG stream at 10 fps, like an IP camera's /video.mjpg."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
        self.end_headers()
        rng = np.random.default_rng(0)
        try:
            for index in range(10_000):
                image = np.full((240, 320, 3), index % 255, np.uint8)
                image[rng.integers(0, 200) :, :40] = 255
                jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                self.wfile.write(b"--" + BOUNDARY + b"\r\nContent-Type: image/jpeg\r\n")
                self.wfile.write(f"Content-Length: {len(jpeg)}\r\n\r\n".encode() + jpeg + b"\r\n")
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[callable]:
    servers: list[ThreadingHTTPServer] = []

    def serve(handler: type[BaseHTTPRequestHandler]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def test_mjpeg_http_camera(redis_client: redis.Redis, http_server: callable) -> None:
    url = http_server(MjpegHandler) + "/video.mjpg"
    service = IngestService(ingest_config(), (CameraConfig(id="mjpeg", url=url, fps=5),), client=redis_client)
    with running(service):
        assert wait_for(lambda: len(frames(redis_client, "mjpeg")) >= 6, 20)
    out = frames(redis_client, "mjpeg")
    assert {(f.width, f.height) for f in out} == {(320, 240)}
    assert metric(service.metrics, "vigil_ingest_frames_read_total", camera="mjpeg") >= len(out)


def test_hls_playlist(
    redis_client: redis.Redis, http_server: callable, tmp_path: Path, clip_720p: Path
) -> None:
    subprocess.run(
        [FFMPEG, "-loglevel", "error", "-y", "-i", str(clip_720p), "-c", "copy", "-f", "hls",
         "-hls_time", "2", "-hls_playlist_type", "vod", str(tmp_path / "index.m3u8")],
        check=True,
    )  # fmt: skip

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    url = http_server(partial(Handler, directory=str(tmp_path))) + "/index.m3u8"
    camera = CameraConfig(id="hls", url=url, fps=5, max_side=320)
    service = IngestService(ingest_config(), (camera,), client=redis_client)
    with running(service):
        assert wait_for(lambda: len(frames(redis_client, "hls")) >= 10, 20)
    out = frames(redis_client, "hls")
    assert {(f.width, f.height) for f in out} == {(320, 180)}
    steps = {b.pts_ms - a.pts_ms for a, b in itertools.pairwise(out)}
    assert steps <= {199, 200, 201}
