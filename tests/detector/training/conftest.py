"""Training fixtures: a tiny YOLO-format data set of red rectangles (the objects) on dark grey."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

RED_BGR = (0, 0, 255)
IMAGES: dict[str, tuple[tuple[int, int], list[tuple[int, int, int, int]]]] = {
    "a": ((200, 150), [(20, 30, 100, 70), (150, 100, 190, 140)]),
    "b": ((120, 160), [(10, 10, 60, 150)]),
    "c": ((160, 160), [(0, 40, 50, 90)]),  # touches the left edge
    "d": ((240, 120), [(100, 20, 220, 110)]),
    "e": ((180, 140), [(70, 60, 100, 80), (120, 10, 170, 60)]),
    "f": ((140, 200), []),  # no object
}
"""name → ((width, height), object boxes xyxy in pixels)."""


def write_split(folder: Path) -> Path:
    """The IMAGES in YOLO layout under ``folder`` (images/, labels/); the image folder."""
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir(parents=True)
    for name, ((width, height), boxes) in IMAGES.items():
        image = np.full((height, width, 3), 30, np.uint8)
        rows = []
        for x1, y1, x2, y2 in boxes:
            image[y1:y2, x1:x2] = RED_BGR
            rows.append(
                f"0 {(x1 + x2) / 2 / width} {(y1 + y2) / 2 / height} {(x2 - x1) / width} {(y2 - y1) / height}"
            )
        cv2.imwrite(str(folder / "images" / f"{name}.png"), image)
        (folder / "labels" / f"{name}.txt").write_text("\n".join(rows) + ("\n" if rows else ""))
    return folder / "images"


@pytest.fixture(scope="session")
def red_boxes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data.yaml with the same six images as train and val split."""
    root = tmp_path_factory.mktemp("red-boxes")
    write_split(root / "train")
    write_split(root / "val")
    (root / "data.yaml").write_text("path: .\ntrain: train/images\nval: val/images\nnames: ['pistol']\n")
    return root / "data.yaml"


@pytest.fixture(scope="session")
def blue_frames(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two 'negative frames': blue scenes without any object."""
    folder = tmp_path_factory.mktemp("negatives")
    paths = []
    for index in range(2):
        path = folder / f"{index:06d}.png"
        cv2.imwrite(str(path), np.full((180, 320, 3), (200, 60, 20), np.uint8))
        paths.append(path)
    return paths
