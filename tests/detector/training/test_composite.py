"""Composite training images: the boxes follow the pixels through mosaic, copy-paste, zoom-out and
hard negatives; nothing lies outside the canvas; tiny and mostly hidden boxes go."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.training.composite import CompositeConfig, CompositeDataset
from detector.training.datasets import MIN_BOX_SIDE, Augment, Placement, YoloDataset, turn_boxes, turn_image

SIZE = 128
STILL = Augment(size=SIZE, flip=0.5, hsv=(0, 0, 0), grey=0, blur=0, jpeg=0, min_visible=0.0)
"""Geometry only (the objects stay pure red), and every object kept however little of it shows
(the visibility rule is tested on its own)."""


def red_mask(pixels: np.ndarray) -> np.ndarray:
    return (pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] < 60)


def assert_boxes_follow_the_pixels(pixels: np.ndarray, boxes: np.ndarray) -> None:
    """Every box lies on the canvas, holds object pixels only (but for a blended pixel at its
    edges), and every object pixel (but for those blended at an object's edges: one erosion by
    5×5, which also clears the slivers dropped by the size rule) lies in a box."""
    red = red_mask(pixels)
    height, width = red.shape
    assert np.all(boxes >= 0) and np.all(boxes[:, 2] <= width) and np.all(boxes[:, 3] <= height)
    covered = np.zeros_like(red)
    for box in boxes:
        assert box[2] - box[0] >= MIN_BOX_SIDE and box[3] - box[1] >= MIN_BOX_SIDE
        x1, y1, x2, y2 = math.ceil(box[0]), math.ceil(box[1]), math.floor(box[2]), math.floor(box[3])
        inside = red[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1]
        assert inside.size == 0 or inside.mean() >= 0.99, f"box {box} holds background"
        covered[max(0, y1 - 2) : y2 + 2, max(0, x1 - 2) : x2 + 2] = True
    core = cv2.erode(red.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert not (core & ~covered).any(), "object pixels outside every box"


def dataset(
    data: Path, config: CompositeConfig, negatives: list[Path] = (), seed: int = 0, augment: Augment = STILL
) -> CompositeDataset:
    return CompositeDataset(
        YoloDataset(data.parent / "train" / "images"), augment, config, negative_frames=negatives, seed=seed
    )


CONFIGS = {
    "mosaic": CompositeConfig(mosaic=1.0, copy_paste=0.0, zoom_out=0.0, negative_share=0.0),
    "one image, zoom-out": CompositeConfig(mosaic=0.0, copy_paste=0.0, zoom_out=1.0, negative_share=0.0),
    "copy-paste": CompositeConfig(mosaic=0.5, copy_paste=1.0, zoom_out=0.0, negative_share=0.0),
    "negatives + paste": CompositeConfig(mosaic=0.0, copy_paste=0.0, negative_share=1.0, negative_paste=1.0),
    "the recipe": CompositeConfig(),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_boxes_follow_the_pixels(red_boxes: Path, blue_frames: list[Path], name: str) -> None:
    images = dataset(red_boxes, CONFIGS[name], blue_frames)
    for index in range(24):
        canvas = images.compose(index % len(images), random.Random(index))
        assert canvas.pixels.shape == (SIZE, SIZE, 3) and canvas.pixels.dtype == np.uint8
        assert len(canvas.boxes) == len(canvas.classes) and canvas.boxes.dtype == np.float32
        assert_boxes_follow_the_pixels(canvas.pixels, canvas.boxes)


@pytest.mark.parametrize("name", ["mosaic", "one image, zoom-out", "copy-paste", "the recipe"])
def test_turned_images_and_pastes_keep_their_boxes_on_the_pixels(
    red_boxes: Path, blue_frames: list[Path], name: str
) -> None:
    images = dataset(red_boxes, CONFIGS[name], blue_frames, augment=replace(STILL, rotate=1.0))
    for index in range(24):
        canvas = images.compose(index % len(images), random.Random(index))
        assert canvas.pixels.shape == (SIZE, SIZE, 3)
        assert_boxes_follow_the_pixels(canvas.pixels, canvas.boxes)


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_quarter_turn_moves_a_box_exactly_with_the_image(turns: int) -> None:
    image = np.zeros((60, 100, 3), np.uint8)  # 100 wide, 60 high
    box = np.float32([[10, 5, 40, 25]])
    image[5:25, 10:40] = 255
    turned, (x1, y1, x2, y2) = turn_image(image, turns), turn_boxes(box, turns, (100, 60))[0].astype(int)
    assert turned.shape == ((100, 60, 3) if turns % 2 else (60, 100, 3))
    assert turned[y1:y2, x1:x2].min() == 255 and turned.sum() == image.sum()


def test_turns_are_drawn_only_when_asked_for() -> None:
    rng = random.Random(3)
    state = rng.getstate()
    assert STILL.turns(rng) == 0 and rng.getstate() == state, "no draw: recipes without it replay as before"
    turning = replace(STILL, rotate=1.0)
    assert {turning.turns(rng) for _ in range(60)} == {1, 2, 3}


def test_zoom_out_brings_the_largest_object_to_cctv_size(red_boxes: Path) -> None:
    images = dataset(red_boxes, CONFIGS["one image, zoom-out"])
    low, high = images.config.cctv_side
    for index in range(5):  # the images with objects
        canvas = images.compose(index, random.Random(index))
        longest = (canvas.boxes[:, 2:] - canvas.boxes[:, :2]).max()
        assert low - 1 <= longest <= high + 1


def test_pastes_are_cctv_sized_and_cover_no_box(red_boxes: Path) -> None:
    config = CompositeConfig(mosaic=0.0, copy_paste=1.0, zoom_out=0.0, negative_share=0.0, pastes=(3, 3))
    images = dataset(red_boxes, config)
    for index in range(12):
        rng = random.Random(index)
        plain = images._single(index % len(images), random.Random(index))
        canvas = images.compose(index % len(images), rng)
        pasted = canvas.boxes[len(plain.boxes) :]
        assert 1 <= len(pasted) <= 3
        sides = (pasted[:, 2:] - pasted[:, :2]).max(1)
        assert np.all((sides >= config.cctv_side[0] - 1) & (sides <= config.cctv_side[1] + 1))
        for k, box in enumerate(canvas.boxes):
            others = np.delete(canvas.boxes, k, axis=0)
            overlap_w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
            overlap_h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
            assert not np.any((overlap_w > 0) & (overlap_h > 0)) or k < len(plain.boxes)


def test_pure_negatives_have_no_box_and_no_object_pixels(red_boxes: Path, blue_frames: list[Path]) -> None:
    config = CompositeConfig(mosaic=0.0, copy_paste=1.0, negative_share=1.0, negative_paste=0.0)
    images = dataset(red_boxes, config, blue_frames)
    for index in range(6):
        canvas = images.compose(index, random.Random(index))
        assert len(canvas.boxes) == 0 and not red_mask(canvas.pixels).any()
        assert (canvas.pixels[..., 2] > 150).mean() > 0.25  # the blue scene is there


def test_samples_are_reproducible_from_seed_and_index(red_boxes: Path, blue_frames: list[Path]) -> None:
    first, second = (
        dataset(red_boxes, CompositeConfig(), blue_frames),
        dataset(red_boxes, CompositeConfig(), blue_frames),
    )
    for index in range(4):
        (image_a, target_a), (image_b, target_b) = first[index], second[index]
        assert image_a.shape == (3, SIZE, SIZE)
        assert image_a.equal(image_b) and target_a["boxes"].equal(target_b["boxes"])


def test_the_drop_rule_for_tiny_and_hidden_boxes() -> None:
    """Kept: at least ``min_visible`` (40 %) of the box on the canvas and both sides ≥ MIN_BOX_SIDE (3 px)."""
    placement = Placement(scale=(1.0, 1.0), offset=(0, 0), canvas=(100, 80), min_visible=0.4)
    boxes = np.float32([
        [-30, 10, 20, 30],  # 40 % visible: kept, clipped at x = 0
        [-31, 10, 19, 30],  # 38 % visible: dropped
        [50, 50, 52.9, 70],  # 2.9 px wide: dropped
        [50, 50, 53, 70],  # 3 px wide: kept
        [90, 70, 120, 100],  # 1/3 × 1/3 visible: dropped
    ])  # fmt: skip
    kept, keep = placement(boxes)
    assert keep.tolist() == [True, False, False, True, False]
    np.testing.assert_allclose(kept, [[0, 10, 20, 30], [50, 50, 53, 70]])


def test_out_of_range_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        CompositeConfig(mosaic=0.8, negative_share=0.3)
    with pytest.raises(ValueError, match="cctv_side"):
        CompositeConfig(cctv_side=(2.0, 60.0))
