"""shared.imaging: decoding frames to BGR or straight to RGB (the same pixels), and shrink: the exact
size asked for, detail finer than the output averaged away when shrinking 2× or more (no
aliasing), and the result of area averaging on smooth content."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from shared.errors import DecodeError
from shared.imaging import decode_bgr, decode_rgb, shrink
from shared.schemas import Frame


def stripes(width: int, height: int) -> np.ndarray:
    """One-pixel black and white columns: the worst case for a resize that skips pixels."""
    row = np.where(np.arange(width) % 2 == 0, 0, 255).astype(np.uint8)
    return np.repeat(row[None, :], height, axis=0)


def frame_of(image: np.ndarray, codec: str) -> Frame:
    data = cv2.imencode(".jpg", image)[1].tobytes() if codec == "jpeg" else image.tobytes()
    return Frame("cam", 0, 0, 0, image.shape[1], image.shape[0], codec, data)


@pytest.mark.parametrize(("codec", "min_side"), [("jpeg", None), ("jpeg", 300), ("jpeg", 150), ("raw", 300)])
def test_decode_rgb_is_decode_bgr_in_rgb_order(codec: str, min_side: int | None) -> None:
    """Full size, and a JPEG decoded at 1/2 and 1/4 size from its DCT coefficients, the same way."""
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(noise, (9, 9), 3)
    frame = frame_of(image, codec)
    bgr, rgb = decode_bgr(frame, min_side=min_side), decode_rgb(frame, min_side=min_side)
    expected = {None: 640, 300: 320, 150: 160}[min_side] if codec == "jpeg" else 640
    assert rgb.shape == (expected * 3 // 4, expected, 3)
    np.testing.assert_array_equal(rgb, bgr[..., ::-1])


def test_decode_rgb_refuses_corrupt_data() -> None:
    frame = frame_of(np.zeros((48, 64, 3), np.uint8), "jpeg")
    with pytest.raises(DecodeError):
        decode_rgb(Frame("cam", 0, 0, 0, 64, 48, "jpeg", frame.data[:20]))
    with pytest.raises(DecodeError):
        decode_rgb(Frame("cam", 0, 0, 0, 64, 48, "raw", b"short"))


@pytest.mark.parametrize(
    ("source", "size"),
    [((1920, 1080), (640, 360)), ((2560, 1440), (960, 540)), ((1921, 1081), (640, 360)),
     ((1280, 720), (640, 360)), ((3840, 2160), (640, 360))],
)  # fmt: skip
def test_shrink_gives_the_size_asked_for_and_averages_fine_detail(
    source: tuple[int, int], size: tuple[int, int]
) -> None:
    out = shrink(stripes(*source), size)
    assert (out.shape[1], out.shape[0]) == size
    # columns finer than the output's pixels average to grey; skipping pixels would leave 0s and 255s
    assert out[:, 1:-1].min() >= 60 and out[:, 1:-1].max() <= 195


def test_under_2x_shrink_resizes_bilinearly_keeping_the_brightness() -> None:
    """Under 2× the models' own letterbox resizes bilinearly too; a one-pixel pattern may alias
    there, but its mean brightness is kept."""
    for source, size in (((1280, 720), (960, 540)), ((640, 480), (384, 288))):
        out = shrink(stripes(*source), size)
        assert (out.shape[1], out.shape[0]) == size
        assert abs(float(out.mean()) - 127.5) < 8


def test_shrink_matches_area_averaging_on_smooth_content() -> None:
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8), (0, 0), 4)
    for size in ((640, 360), (1280, 720), (960, 540)):
        area = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32)
        assert np.abs(shrink(image, size).astype(np.float32) - area).mean() < 1.0


def test_shrink_works_on_grey_images_and_leaves_the_input_alone() -> None:
    grey = stripes(800, 600)
    before = grey.copy()
    assert shrink(grey, (200, 150)).shape == (150, 200)
    np.testing.assert_array_equal(grey, before)
