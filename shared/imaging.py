"""Frames as pictures: one decode of a :class:`~shared.schemas.Frame` to a BGR (or RGB) array, and one
way to draw boxes with captions on it (the detector, snapshots, the demo's video and ``vigil predict``)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from shared.errors import DecodeError
from shared.schemas import Box, Detection, Frame

BOX_COLOUR_BGR = (0, 0, 255)
CAPTION_COLOUR_BGR = (255, 255, 255)
_FONT, _FONT_SCALE = cv2.FONT_HERSHEY_SIMPLEX, 0.5
_REDUCED_DECODES = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                    (2, cv2.IMREAD_REDUCED_COLOR_2))  # fmt: skip
_REDUCED_GREY_DECODES = ((8, cv2.IMREAD_REDUCED_GRAYSCALE_8), (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
                         (2, cv2.IMREAD_REDUCED_GRAYSCALE_2))  # fmt: skip


def decode_bgr(frame: Frame, *, min_side: int | None = None) -> np.ndarray:
    """The frame's pixels as an HxWx3 ``uint8`` BGR array (read-only for raw frames).

    With ``min_side``, a JPEG whose longer side is at least 2, 4 or 8 times ``min_side`` is decoded
    at 1/2, 1/4 or 1/8 size straight from its DCT coefficients (the largest factor that keeps the
    longer side >= ``min_side``). Raises :class:`DecodeError` for data that does not decode.
    """
    if frame.codec == "raw":
        return _raw_bgr(frame)
    return _decode_jpeg(frame, _colour_flag(frame, min_side))


def decode_rgb(frame: Frame, *, min_side: int | None = None) -> np.ndarray:
    """:func:`decode_bgr` in RGB order, what the models take: a JPEG is decoded straight to RGB
    (OpenCV's ``IMREAD_COLOR_RGB``), which spares a conversion pass over the image (the detector's
    decoding of a 640×480 frame went from 1.48 to 1.14 ms, ``bench/pipeline.py``, docs/detector.md)."""
    if frame.codec == "raw":
        return cv2.cvtColor(_raw_bgr(frame), cv2.COLOR_BGR2RGB)
    return _decode_jpeg(frame, (_colour_flag(frame, min_side) & ~cv2.IMREAD_COLOR) | cv2.IMREAD_COLOR_RGB)


def _raw_bgr(frame: Frame) -> np.ndarray:
    if len(frame.data) != frame.width * frame.height * 3:
        raise DecodeError("raw frame of the wrong size")
    return np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3)


def _colour_flag(frame: Frame, min_side: int | None) -> int:
    """OpenCV's flag for a colour decode at full size, or reduced as :func:`decode_bgr` says."""
    if min_side is None:
        return cv2.IMREAD_COLOR
    longer = max(frame.width, frame.height)
    reduced = (flag for factor, flag in _REDUCED_DECODES if longer / factor >= min_side)
    return next(reduced, cv2.IMREAD_COLOR)


def decode_grey(frame: Frame, *, min_height: int) -> np.ndarray:
    """The frame as an HxW ``uint8`` grey array at least ``min_height`` high (or its own height, if
    less): a JPEG is decoded at 1/2, 1/4 or 1/8 size straight from its DCT coefficients (the largest
    factor that keeps ``min_height``), a raw frame converted in full. Raises :class:`DecodeError`."""
    if frame.codec == "raw":
        return cv2.cvtColor(decode_bgr(frame), cv2.COLOR_BGR2GRAY)
    flag = next(
        (reduced for factor, reduced in _REDUCED_GREY_DECODES if frame.height / factor >= min_height),
        cv2.IMREAD_GRAYSCALE,
    )
    return _decode_jpeg(frame, flag)


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (HxW or HxWxC ``uint8``) shrunk to ``size`` (width, height), averaging away detail
    finer than the output's pixels, fast at any ratio.

    OpenCV's area averaging is fast only at whole ratios: here 1280→960 took 4.8 ms against 1.6 ms
    bilinear, 1920→640 2.9 ms against 1.0 ms, 2560→960 12.3 ms, while 2× took 0.3–0.6 ms. So the
    image is halved with area averaging while at least twice the output, then resized bilinearly
    by the factor left (under 2×, as the models' own letterbox resizes; a one-pixel pattern may
    alias there, as it does in the letterbox)."""
    width, height = size
    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:
        half = (max(1, image.shape[1] // 2), max(1, image.shape[0] // 2))
        image = cv2.resize(image[: 2 * half[1], : 2 * half[0]], half, interpolation=cv2.INTER_AREA)
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def _decode_jpeg(frame: Frame, flag: int) -> np.ndarray:
    try:
        image = cv2.imdecode(np.frombuffer(frame.data, np.uint8), flag)
    except cv2.error:
        image = None
    if image is None:
        raise DecodeError("corrupt JPEG")
    return image


def draw_boxes(image: np.ndarray, boxes: Sequence[Box], captions: Sequence[str]) -> np.ndarray:
    """A copy of the BGR ``image`` with each box (xyxy pixels) outlined and its caption above it."""
    canvas = image.copy()
    for box, caption in zip(boxes, captions, strict=True):
        x1, y1, x2, y2 = (round(v) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), BOX_COLOUR_BGR, 2)
        (width, height), _ = cv2.getTextSize(caption, _FONT, _FONT_SCALE, 1)
        cv2.rectangle(canvas, (x1, max(0, y1 - height - 6)), (x1 + width + 4, y1), BOX_COLOUR_BGR, -1)
        cv2.putText(canvas, caption, (x1 + 2, max(height, y1 - 4)), _FONT, _FONT_SCALE, CAPTION_COLOUR_BGR, 1)
    return canvas


def caption(detection: Detection) -> str:
    """What a drawn box says: label, track id (once confirmed) and score: ``pistol #3 0.87``."""
    track = "" if detection.track_id is None else f" #{detection.track_id}"
    return f"{detection.label}{track} {detection.score:.2f}"
