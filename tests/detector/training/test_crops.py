"""R-CNN's crop labelling: positives at IoU ≥ 0.5 with their box as target, background below 0.3."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.boxes import iou_matrix_np
from detector.training.crops import CropDataset, CropSampler, negative_frames
from detector.training.datasets import Augment, YoloDataset
from tests.support.media import make_h264_clip

BOX = np.array([[60.0, 40.0, 140.0, 100.0]], np.float32)


@pytest.fixture(scope="module")
def one_image_dataset(tmp_path_factory: pytest.TempPathFactory) -> YoloDataset:
    """One 200×160 image, a red rectangle at BOX, in YOLO layout."""
    root = tmp_path_factory.mktemp("crops")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    image = np.full((160, 200, 3), 30, np.uint8)
    x1, y1, x2, y2 = BOX[0].astype(int)
    image[y1:y2, x1:x2] = (40, 40, 230)  # BGR red
    cv2.imwrite(str(root / "images" / "a.png"), image)
    cx, cy, w, h = (x1 + x2) / 2 / 200, (y1 + y2) / 2 / 160, (x2 - x1) / 200, (y2 - y1) / 160
    (root / "labels" / "a.txt").write_text(f"0 {cx} {cy} {w} {h}\n")
    return YoloDataset(root / "images")


def test_sampled_crops_follow_rcnns_iou_rule() -> None:
    sampler, rng = CropSampler(), random.Random(0)
    for _ in range(200):
        positive = sampler.positive(BOX, 200, 160, rng)
        negative = sampler.negative(BOX, 200, 160, rng)
        assert positive is not None and negative is not None
        assert iou_matrix_np(np.array([positive]), BOX).max() >= 0.5
        assert iou_matrix_np(np.array([negative]), BOX).max() < 0.3
        assert 0 <= positive[0] < positive[2] <= 200 and 0 <= negative[1] < negative[3] <= 160
    assert sampler.positive(np.zeros((0, 4)), 200, 160, rng) is None


def test_a_positive_crops_target_is_the_box_in_the_crops_pixels(one_image_dataset: YoloDataset) -> None:
    no_jitter = Augment(flip=0.0, hsv=(0, 0, 0), grey=0, blur=0, jpeg=0)
    crops = CropDataset(
        one_image_dataset, CropSampler(positive_fraction=1.0), crops_per_image=50, augment=no_jitter, seed=1
    )
    for index in range(len(crops)):
        image, target = crops[index]
        assert len(target["boxes"]) == 1
        x1, y1, x2, y2 = (round(v) for v in target["boxes"][0].tolist())
        inside = image[:, max(0, y1) + 2 : y2 - 2, max(0, x1) + 2 : x2 - 2]
        assert inside.numel() and (inside[0] > 200).all(), "the target box covers the rectangle in the crop"


def test_background_crops_have_no_box_and_flips_move_the_box(one_image_dataset: YoloDataset) -> None:
    negatives = CropDataset(one_image_dataset, CropSampler(positive_fraction=0.0), crops_per_image=20, seed=2)
    assert all(len(negatives[i][1]["boxes"]) == 0 for i in range(20))
    flipped = CropDataset(
        one_image_dataset, CropSampler(positive_fraction=1.0), crops_per_image=20,
        augment=Augment(flip=1.0, hsv=(0, 0, 0), grey=0, blur=0, jpeg=0), seed=3,
    )  # fmt: skip
    for index in range(20):
        image, target = flipped[index]
        x1, y1, x2, y2 = (round(v) for v in target["boxes"][0].tolist())
        assert (image[0, max(0, y1) + 2 : y2 - 2, max(0, x1) + 2 : x2 - 2] > 200).all()


def test_negative_frames_stop_before_the_held_out_part(tmp_path: Path) -> None:
    clip = make_h264_clip(tmp_path / "clip.mp4", seconds=2, fps=10, width=64, height=48)
    frames = negative_frames(clip, 12, tmp_path / "cache", every=5)
    assert [path.stem for path in frames] == ["000000", "000005", "000010"]
    assert negative_frames(clip, 12, tmp_path / "cache", every=5) == frames, "cached"
    assert negative_frames(None, None, tmp_path) == []
