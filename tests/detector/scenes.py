"""Scenes for motion gating tests: a still room (the first frame of one-by-one-person-detection.mp4,
before anyone enters), re-encoded with fresh sensor noise each frame, and a pistol cut from a
validation image of the pistol data set to paste into it."""

from __future__ import annotations

import functools

import cv2
import numpy as np

from shared.schemas import Box, Codec, Frame
from tests.support.data import data_dir

SIZE = (640, 360)
FRAME_NS = 200_000_000
"""5 fps, the cameras' default."""
PISTOL_IMAGE = "armas--1008-_jpg.rf.c675f1a58ec7bea85818b1719c781052"
"""A validation image (``pistols/images/val``) whose pistol the shipped model scores about 0.7 when
pasted at 100 px into the room."""
PISTOL_AT = (300, 150)
"""Where the pistol crop's top-left corner goes, in :data:`SIZE` pixels."""
NOISE_PATTERNS = 8
"""Sensor noise patterns the frames cycle through (drawing new noise each frame is slower than the
code under test)."""


@functools.cache
def room(size: tuple[int, int] = SIZE) -> np.ndarray:
    """The empty room (BGR, ``size``); frame 0 of the clip, which test-only rules allow."""
    capture = cv2.VideoCapture(str(data_dir() / "videos" / "one-by-one-person-detection.mp4"))
    ok, image = capture.read()
    capture.release()
    assert ok, "the clip's first frame"
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


@functools.cache
def _pistol(side: int) -> tuple[np.ndarray, Box]:
    """:func:`pistol_crop` and the labelled box in it."""
    image = cv2.imread(str(data_dir() / "pistols" / "images" / "val" / f"{PISTOL_IMAGE}.jpg"))
    label = (data_dir() / "pistols" / "labels" / "val" / f"{PISTOL_IMAGE}.txt").read_text().split()
    cx, cy, w, h = (float(v) for v in label[1:5])
    height, width = image.shape[:2]
    x1, y1 = max(0, round((cx - 0.75 * w) * width)), max(0, round((cy - 0.75 * h) * height))
    x2, y2 = min(width, round((cx + 0.75 * w) * width)), min(height, round((cy + 0.75 * h) * height))
    crop = image[y1:y2, x1:x2]
    scale = side / max(crop.shape[:2])
    labelled = ((cx - w / 2) * width - x1, (cy - h / 2) * height - y1,
                (cx + w / 2) * width - x1, (cy + h / 2) * height - y1)  # fmt: skip
    resized = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return resized, tuple(v * scale for v in labelled)  # type: ignore[return-value]


def pistol_crop(side: int = 100) -> np.ndarray:
    """The validation image's labelled pistol with a quarter of its size as context on each side,
    scaled so its longer side is ``side`` pixels."""
    return _pistol(side)[0]


def paste_pistol(image: np.ndarray, at: tuple[int, int], side: int) -> tuple[np.ndarray, Box, Box]:
    """A copy of ``image`` with :func:`pistol_crop` of ``side`` pasted with its top-left corner at
    ``at``; the pasted box and the pistol's labelled box, in ``image`` pixels."""
    crop, (bx1, by1, bx2, by2) = _pistol(side)
    x, y = at
    pasted = image.copy()
    pasted[y : y + crop.shape[0], x : x + crop.shape[1]] = crop
    box = (float(x), float(y), float(x + crop.shape[1]), float(y + crop.shape[0]))
    return pasted, box, (x + bx1, y + by1, x + bx2, y + by2)


def with_pistol(image: np.ndarray, at: tuple[int, int] = PISTOL_AT) -> tuple[np.ndarray, Box]:
    """A copy of ``image`` with the pistol crop pasted at ``at`` (scaled with the image from
    :data:`SIZE`), and the pasted box."""
    scale = image.shape[1] / SIZE[0]
    pasted, box, _labelled = paste_pistol(image, (round(at[0] * scale), round(at[1] * scale)),
                                          round(100 * scale))  # fmt: skip
    return pasted, box


@functools.cache
def _unit_noise(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def noisy_frame(
    camera: str, seq: int, image: np.ndarray, *, ts_ns: int, sigma: float = 3.0, codec: Codec = "jpeg"
) -> Frame:
    """``image`` with Gaussian sensor noise (one of :data:`NOISE_PATTERNS`, by ``seq``), as a JPEG
    (or raw) frame."""
    noisy = np.clip(image + sigma * _unit_noise(image.shape, seq % NOISE_PATTERNS), 0, 255).astype(np.uint8)
    if codec == "raw":
        data = noisy.tobytes()
    else:
        data = cv2.imencode(".jpg", noisy, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    height, width = image.shape[:2]
    return Frame(camera, seq, ts_ns, seq * 200, width, height, codec, data)
