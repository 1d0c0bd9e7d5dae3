"""Detector test fixtures: a small checkpoint, and JPEG frames in Redis."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
import torch

from detector.models.checkpoint import Checkpoint
from detector.models.registry import build_model
from shared import keys
from shared.schemas import Frame


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained Lite0 YOLO at 128 px with one class: real code path, fast on a CPU."""
    torch.manual_seed(0)
    model = build_model("yolo_lite0", class_names=("pistol",), input_size=128)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    return Checkpoint.from_model(model, "yolo_lite0").save(path)


def jpeg_frame(camera: str, seq: int, width: int = 320, height: int = 240, ts_ns: int | None = None) -> Frame:
    rng = np.random.default_rng(seq)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", image)[1].tobytes()
    return Frame(camera, seq, ts_ns or time.time_ns(), seq * 200, width, height, "jpeg", data)


def push(client: redis.Redis, frame: Frame) -> None:
    client.xadd(keys.frames_stream(frame.camera), frame.encode(), maxlen=100, approximate=True)
