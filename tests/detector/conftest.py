"""Detector test fixtures: small checkpoints, synthetic frames, and frames in Redis."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import redis
import torch

from detector.models.checkpoint import Checkpoint
from detector.models.localizer import Localizer
from detector.models.registry import build_model
from shared import keys
from shared.schemas import Box, Frame
from tests.detector.models.test_localizer import one_rectangle, trained_localizer

TILE = 64
"""The side of the overfit localizer's training images (``trained_localizer``)."""
RECTANGLE: Box = (72.0, 74.0, 104.0, 114.0)
"""In :func:`tiled_frame`: its one rectangle (the first training image's, in the tile at 64, 64)."""
BACKGROUND_SEEDS = (10, 11, 13)
"""Training images of noise that the overfit localizer scores low (seed 12 it scores about 0.5)."""


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained Lite0 YOLO at 128 px with one class: real code path, fast on a CPU."""
    torch.manual_seed(0)
    model = build_model("yolo_lite0", class_names=("pistol",), input_size=128)
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    return Checkpoint.from_model(model, "yolo_lite0").save(path)


@pytest.fixture(scope="session")
def overfit_localizer() -> Localizer:
    """The localizer overfit on rectangles on noise (``trained_localizer``), trained once."""
    return trained_localizer()


@pytest.fixture(scope="session")
def localizer_checkpoint(overfit_localizer: Localizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "localizer.pt"
    return Checkpoint.from_model(overfit_localizer, "localizer_lite0").save(path, half=False)


def tiled_frame(camera: str, seq: int, *, ts_ns: int | None = None) -> Frame:
    """A raw 256×192 frame of the overfit localizer's own training images, 64 px tiles: the one with
    a rectangle at (64, 64) (:data:`RECTANGLE`), noise in the others."""
    tiles = [one_rectangle(TILE, (0, 0, 0, 0), seed=seed) for seed in BACKGROUND_SEEDS]
    image = torch.zeros(3, 3 * TILE, 4 * TILE, dtype=torch.uint8)
    for index, (row, col) in enumerate(np.ndindex(3, 4)):
        image[:, row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE] = tiles[index % len(tiles)]
    image[:, TILE : 2 * TILE, TILE : 2 * TILE] = one_rectangle(TILE, (8, 10, 40, 50), seed=0)
    bgr = image.permute(1, 2, 0).flip(-1).contiguous().numpy()
    ts_ns = time.time_ns() if ts_ns is None else ts_ns
    return Frame(camera, seq, ts_ns, seq * 200, 4 * TILE, 3 * TILE, "raw", bgr.tobytes())


def background_box(row: int, col: int, margin: float) -> Box:
    """A box in :func:`tiled_frame` whose context region (``margin`` each side) is a noise tile."""
    inset = TILE * margin / (1 + 2 * margin)
    return (col * TILE + inset, row * TILE + inset, (col + 1) * TILE - inset, (row + 1) * TILE - inset)


def jpeg_frame(camera: str, seq: int, width: int = 320, height: int = 240, ts_ns: int | None = None) -> Frame:
    rng = np.random.default_rng(seq)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    data = cv2.imencode(".jpg", image)[1].tobytes()
    return Frame(camera, seq, ts_ns or time.time_ns(), seq * 200, width, height, "jpeg", data)


def push(client: redis.Redis, frame: Frame) -> None:
    client.xadd(keys.frames_stream(frame.camera), frame.encode(), maxlen=100, approximate=True)
