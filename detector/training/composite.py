"""Composite training images for small data and small objects: mosaic, copy-paste, zoom-out to
CCTV scale and hard negatives.

Each sample of :class:`CompositeDataset` is one ``size``×``size`` canvas, built one of three ways:

* **hard negative** (``negative_share`` of the samples, when negative frames are given): a frame
  of people without weapons, placed like any image; in ``negative_paste`` of them, pistols are
  pasted in at CCTV scale (a pistol in someone's scene), the rest stay pure background;
* **mosaic** (``mosaic``): four training images, one per quadrant around a random centre;
* **one image**, as :class:`~detector.training.datasets.Augment` places it; in ``zoom_out`` of
  them scaled so that its largest object is ``cctv_side`` px long (a camera far away).

Then, with ``copy_paste``, pistol crops from other training images are pasted in at CCTV scale
where they cover no box, and the photometric jitter of ``Augment`` goes over the whole canvas.
Boxes follow the pixels exactly: a box is where its object's pixels are; boxes less than
``Augment.min_visible`` visible or under ``MIN_BOX_SIDE`` px go (see ``Placement``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from detector.training.datasets import (
    MIN_BOX_SIDE,
    Augment,
    YoloDataset,
    as_sample,
    log_uniform,
    read_labels,
    read_rgb,
    turn_image,
)

Rng = random.Random | ModuleType


@dataclass(frozen=True)
class CompositeConfig:
    """How often each composition happens (probabilities per sample) and at which scales."""

    mosaic: float = 0.5
    mosaic_centre: tuple[float, float] = (0.3, 0.7)
    """Range of the mosaic's centre, as a fraction of the side."""
    mosaic_tile_zoom: tuple[float, float] = (0.7, 1.5)
    """Scale of each mosaic tile's image relative to fitting its quadrant."""
    copy_paste: float = 0.3
    pastes: tuple[int, int] = (1, 3)
    cctv_side: tuple[float, float] = (15.0, 60.0)
    """Longer side, in canvas pixels, of pasted pistols and of the largest object after a zoom-out."""
    zoom_out: float = 0.15
    negative_share: float = 0.1
    negative_paste: float = 0.5
    negative_zoom: tuple[float, float] = (0.7, 1.5)
    """Scale of a negative frame relative to fitting the canvas (above 1: a crop of the scene)."""

    def __post_init__(self) -> None:
        shares = (self.mosaic, self.copy_paste, self.zoom_out, self.negative_share, self.negative_paste)
        if not all(0 <= p <= 1 for p in shares) or self.mosaic + self.negative_share > 1:
            raise ValueError(f"composite probabilities must lie in [0, 1], mosaic + negatives ≤ 1: {self}")
        if not MIN_BOX_SIDE <= self.cctv_side[0] <= self.cctv_side[1]:
            raise ValueError(
                f"cctv_side must be an increasing range from {MIN_BOX_SIDE} px: {self.cctv_side}"
            )


@dataclass
class Canvas:
    """A canvas being composed: RGB HWC uint8 pixels, boxes xyxy in its pixels, classes."""

    pixels: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray


class CompositeDataset(Dataset):
    """``len(images)`` composite samples per epoch (see the module docstring); samples as
    :class:`YoloDataset`'s. Random draws come from the ``random`` module (seeded per DataLoader
    worker, or by the trainer per epoch), or from ``seed`` and the index when given (tests)."""

    def __init__(
        self,
        images: YoloDataset,
        augment: Augment,
        config: CompositeConfig = CompositeConfig(),
        *,
        negative_frames: Sequence[Path] = (),
        seed: int | None = None,
    ) -> None:
        self.images, self.augment, self.config = images, augment, config
        self.negative_frames = list(negative_frames)
        self.seed = seed
        self.objects = [
            (index, row)
            for index, (_, label_path) in enumerate(images.samples)
            for row in range(len(read_labels(label_path, 1, 1)[1]))
        ]
        """Every object of the training images, as (image index, label row): the paste bank."""

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        rng: Rng = random.Random(hash((self.seed, index))) if self.seed is not None else random
        canvas = self.compose(index, rng)
        pixels = self.augment.photometric(canvas.pixels, rng)
        return as_sample(pixels, canvas.boxes, canvas.classes)

    def compose(self, index: int, rng: Rng) -> Canvas:
        """The canvas of sample ``index`` before the photometric jitter."""
        cfg = self.config
        negative_share = cfg.negative_share if self.negative_frames else 0.0
        draw = rng.random()
        paste = cfg.copy_paste
        if draw < negative_share:
            canvas = self._negative(rng)
            paste = cfg.negative_paste
        elif draw < negative_share + cfg.mosaic:
            canvas = self._mosaic(index, rng)
        else:
            canvas = self._single(index, rng)
        if self.objects and rng.random() < paste:
            for _ in range(rng.randint(*cfg.pastes)):
                self._paste(canvas, rng)
        return canvas

    # -- the three compositions --------------------------------------------------------------

    def _negative(self, rng: Rng) -> Canvas:
        frame = read_rgb(self.negative_frames[rng.randrange(len(self.negative_frames))])
        pixels, _ = self.augment.geometric(frame, rng, zoom=rng.uniform(*self.config.negative_zoom))
        return Canvas(pixels, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))

    def _single(self, index: int, rng: Rng) -> Canvas:
        image, boxes, classes = self.images.load(index)
        zoom = None
        if len(boxes) and rng.random() < self.config.zoom_out:
            longest = float((boxes[:, 2:] - boxes[:, :2]).max())
            fit = self.augment.size / max(image.shape[:2])
            zoom = log_uniform(rng, *self.config.cctv_side) / max(longest * fit, 1e-6)
        pixels, placement = self.augment.geometric(image, rng, zoom=zoom)
        boxes, keep = placement(boxes)
        return Canvas(pixels, boxes, classes[keep])

    def _mosaic(self, index: int, rng: Rng) -> Canvas:
        size = self.augment.size
        centre_x, centre_y = (round(size * rng.uniform(*self.config.mosaic_centre)) for _ in range(2))
        pixels = np.full((size, size, 3), 114, np.uint8)
        all_boxes, all_classes = [], []
        indices = [index] + [rng.randrange(len(self.images)) for _ in range(3)]
        quadrants = [(0, 0, centre_x, centre_y), (centre_x, 0, size, centre_y),
                     (0, centre_y, centre_x, size), (centre_x, centre_y, size, size)]  # fmt: skip
        for tile_index, (x1, y1, x2, y2) in zip(indices, quadrants, strict=True):
            image, boxes, classes = self.images.load(tile_index)
            zoom = rng.uniform(*self.config.mosaic_tile_zoom)
            tile, placement = self.augment.geometric(image, rng, canvas=(x2 - x1, y2 - y1), zoom=zoom)
            pixels[y1:y2, x1:x2] = tile
            boxes, keep = placement(boxes)
            all_boxes.append(boxes + np.float32([x1, y1, x1, y1]))
            all_classes.append(classes[keep])
        return Canvas(pixels, np.concatenate(all_boxes).astype(np.float32), np.concatenate(all_classes))

    # -- copy-paste --------------------------------------------------------------------------

    def _paste(self, canvas: Canvas, rng: Rng, tries: int = 10) -> bool:
        """One object of the bank pasted (its box's pixels, rescaled to CCTV size, maybe
        turned and mirrored) where it overlaps no box of ``canvas``; False when no free place was found."""
        source, row = self.objects[rng.randrange(len(self.objects))]
        image, boxes, classes = self.images.load(source)
        box, label = boxes[row], classes[row]
        x1, y1 = math.floor(box[0]), math.floor(box[1])
        x2, y2 = max(x1 + 1, math.ceil(box[2])), max(y1 + 1, math.ceil(box[3]))
        crop = image[y1:y2, x1:x2]
        if min(crop.shape[:2]) < MIN_BOX_SIDE:  # a degenerate label: nothing to paste
            return False
        if turns := self.augment.turns(rng):
            crop = turn_image(crop, turns)
        scale = log_uniform(rng, *self.config.cctv_side) / max(crop.shape[:2])
        width = max(round(MIN_BOX_SIDE), round(crop.shape[1] * scale))
        height = max(round(MIN_BOX_SIDE), round(crop.shape[0] * scale))
        size = self.augment.size
        if width > size or height > size:
            return False
        crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
        if rng.random() < self.augment.flip:
            crop = crop[:, ::-1]
        for _ in range(tries):
            left, top = rng.randint(0, size - width), rng.randint(0, size - height)
            placed = np.float32([left, top, left + width, top + height])
            if not _overlaps_any(placed, canvas.boxes):
                canvas.pixels[top : top + height, left : left + width] = crop
                canvas.boxes = np.concatenate([canvas.boxes, placed[None]]).astype(np.float32)
                canvas.classes = np.concatenate([canvas.classes, np.int64([label])])
                return True
        return False


def _overlaps_any(box: np.ndarray, boxes: np.ndarray) -> bool:
    if not len(boxes):
        return False
    width = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    height = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    return bool(((width > 0) & (height > 0)).any())
