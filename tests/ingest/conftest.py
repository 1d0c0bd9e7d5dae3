"""Ingest test helpers: run an IngestService on a thread, read metrics and streams."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from ingest.metrics import IngestMetrics
from ingest.service import IngestService
from shared import keys
from shared.config import CameraConfig, IngestConfig
from shared.schemas import Frame
from tests.support.data import data_dir
from tests.support.media import make_h264_clip

DATA = data_dir() / "videos"
VTEST = DATA / "vtest.avi"
PEOPLE = DATA / "one-by-one-person-detection.mp4"


def ingest_config(**overrides: object) -> IngestConfig:
    settings: dict[str, object] = {
        "instance": "test-worker",
        "metrics_port": None,
        "lease_ttl_s": 2.0,
        "stream_maxlen": 10_000,
        "open_timeout_s": 3.0,
        "read_timeout_s": 3.0,
        "reconnect_base_s": 0.2,
        "reconnect_cap_s": 1.0,
        "registry_interval_s": 0.2,
    }
    settings.update(overrides)
    return IngestConfig(**settings)  # type: ignore[arg-type]


def run_burst(client: redis.Redis, cameras: list[CameraConfig], **kwargs: object) -> IngestService:
    """Run until every camera finished (or max_frames), in this thread."""
    max_frames = kwargs.pop("max_frames", None)
    service = IngestService(
        ingest_config(**kwargs), tuple(cameras), client=client, burst=True, max_frames=max_frames
    )  # type: ignore[arg-type]
    service.run()
    return service


def frames(client: redis.Redis, camera: str) -> list[Frame]:
    return [Frame.decode(fields) for _id, fields in client.xrange(keys.frames_stream(camera))]


def metric(metrics: IngestMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture(scope="session")
def clip_720p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 6 s 1280x720 25 fps H.264 clip (libx264), made once per session."""
    return make_h264_clip(
        tmp_path_factory.mktemp("clips") / "720p.mp4", seconds=6, fps=25, width=1280, height=720
    )
