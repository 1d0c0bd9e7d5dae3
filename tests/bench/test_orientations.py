"""``bench/orientations.py``: every turned or mirrored copy of a split keeps its labels on the
object's pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.orientations import ORIENTATIONS, write_oriented
from detector.training.datasets import list_samples, read_labels


def one_image_split(folder: Path) -> Path:
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    image = np.full((90, 160, 3), 30, np.uint8)  # 160 wide, 90 high; the object 40 × 20 near a corner
    image[10:30, 100:140] = 255
    cv2.imwrite(str(folder / "images" / "a.png"), image)
    (folder / "labels" / "a.txt").write_text(f"0 {120 / 160} {20 / 90} {40 / 160} {20 / 90}\n")
    return folder / "images"


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_the_label_follows_the_object(tmp_path: Path, name: str) -> None:
    images = write_oriented(one_image_split(tmp_path / "split"), tmp_path / "out", ORIENTATIONS[name])
    [(image_path, label_path)] = list_samples(images)
    image = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
    boxes, classes = read_labels(label_path, image.shape[1], image.shape[0])
    assert classes.tolist() == [0]
    x1, y1, x2, y2 = np.rint(boxes[0]).astype(int)
    bright = image > 128
    assert bright[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].all(), "the box holds the object"
    assert bright.sum() <= (x2 - x1 + 2) * (y2 - y1 + 2), "and the object lies in the box"
    turned = name.startswith("turned 90")
    assert image.shape == ((160, 90) if turned else (90, 160))
