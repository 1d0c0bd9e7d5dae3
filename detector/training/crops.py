"""Crops for the region classifiers (localizer, sliding window, R-CNN): R-CNN's fine-tuning data.

Each sample is one region cut out of a training image at full detail, labelled as R-CNN labelled
its proposals: **positive** when its IoU with an object's box is at least 0.5 (its target is that
box, in the crop's pixels, possibly reaching past the crop's edge), **background** when its IoU
with every box is below 0.3, never in between. Background crops are drawn anywhere in the image,
near the objects (hard negatives: a hand, a sleeve, the object's surroundings), and, when given,
from frames of a video without the classes (``negatives``: e.g. the training half of a CCTV clip).
Crops get a horizontal flip and the photometric part of :class:`Augment`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from detector.boxes import iou_matrix_np
from detector.training.datasets import Augment, YoloDataset, log_uniform, read_rgb

CROP_SOURCE_SIDE = 576
"""Training images are cached with at least this longer side, so crops keep their detail."""

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class CropSampler:
    """Where the crops of one image go (xyxy, in its pixels)."""

    positive_fraction: float = 0.5
    positive_iou: float = 0.5
    negative_iou: float = 0.3
    hard_negative_fraction: float = 0.5
    """Of the background crops: the share drawn around an object rather than anywhere."""
    tries: int = 30

    def positive(self, boxes: np.ndarray, width: int, height: int, rng: random.Random) -> Box | None:
        """A crop with IoU ≥ ``positive_iou`` with one of ``boxes`` (None without boxes)."""
        if len(boxes) == 0:
            return None
        box = boxes[rng.randrange(len(boxes))]
        box_w, box_h = box[2] - box[0], box[3] - box[1]
        centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        for _ in range(self.tries):
            if rng.random() < 0.5:  # square, as the sliding windows are
                crop_w = crop_h = max(box_w, box_h) * log_uniform(rng, 0.8, 1.5)
            else:  # any shape, as proposals are
                crop_w, crop_h = box_w * log_uniform(rng, 0.8, 1.6), box_h * log_uniform(rng, 0.8, 1.6)
            x = centre_x + rng.uniform(-0.2, 0.2) * crop_w
            y = centre_y + rng.uniform(-0.2, 0.2) * crop_h
            crop = _clip((x - crop_w / 2, y - crop_h / 2, x + crop_w / 2, y + crop_h / 2), width, height)
            if crop is not None and _best_iou(crop, boxes) >= self.positive_iou:
                return crop
        return _clip(tuple(box), width, height)

    def negative(self, boxes: np.ndarray, width: int, height: int, rng: random.Random) -> Box | None:
        """A crop with IoU < ``negative_iou`` with every one of ``boxes`` (None if none was found)."""
        for _ in range(self.tries):
            if len(boxes) and rng.random() < self.hard_negative_fraction:
                box = boxes[rng.randrange(len(boxes))]
                side = math.sqrt(max(1.0, (box[2] - box[0]) * (box[3] - box[1]))) * log_uniform(
                    rng, 0.3, 3.0
                )
                x = (box[0] + box[2]) / 2 + rng.uniform(-1.5, 1.5) * side
                y = (box[1] + box[3]) / 2 + rng.uniform(-1.5, 1.5) * side
            else:
                side = min(width, height) * log_uniform(rng, 0.1, 1.0)
                x, y = rng.uniform(0, width), rng.uniform(0, height)
            aspect = log_uniform(rng, 0.5, 2.0)
            crop_w, crop_h = side * math.sqrt(aspect), side / math.sqrt(aspect)
            crop = _clip((x - crop_w / 2, y - crop_h / 2, x + crop_w / 2, y + crop_h / 2), width, height)
            if crop is not None and (len(boxes) == 0 or _best_iou(crop, boxes) < self.negative_iou):
                return crop
        return None


def _clip(crop: Sequence[float], width: int, height: int, min_side: float = 8.0) -> Box | None:
    x1, y1 = max(0.0, float(crop[0])), max(0.0, float(crop[1]))
    x2, y2 = min(float(width), float(crop[2])), min(float(height), float(crop[3]))
    return (x1, y1, x2, y2) if x2 - x1 >= min_side and y2 - y1 >= min_side else None


def _best_iou(crop: Box, boxes: np.ndarray) -> float:
    return float(iou_matrix_np(np.asarray([crop], np.float64), boxes.astype(np.float64)).max())


class CropDataset(Dataset):
    """``crops_per_image`` random crops of each image per epoch (``negative_share`` of the samples
    from ``negative_frames`` when there are any); samples as :class:`YoloDataset`'s, the crop
    being the image and the chosen object (if any) its one box."""

    def __init__(
        self,
        images: YoloDataset,
        sampler: CropSampler,
        *,
        crops_per_image: int = 4,
        negative_frames: Sequence[Path] = (),
        negative_share: float = 0.1,
        augment: Augment | None = None,
        seed: int | None = None,
    ) -> None:
        self.images, self.sampler, self.crops_per_image = images, sampler, crops_per_image
        self.negative_frames, self.negative_share = list(negative_frames), negative_share
        self.augment = augment or Augment()
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images) * self.crops_per_image

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        # without a seed, from the ``random`` module: seeded per epoch and loader worker (exact resume)
        seed = hash((self.seed, index)) if self.seed is not None else random.getrandbits(64)
        rng = random.Random(seed)
        if self.negative_frames and rng.random() < self.negative_share:
            image = read_rgb(self.negative_frames[rng.randrange(len(self.negative_frames))])
            boxes, classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        else:
            image, boxes, classes = self.images.load(index // self.crops_per_image)
        height, width = image.shape[:2]
        crop = None
        if rng.random() < self.sampler.positive_fraction:
            crop = self.sampler.positive(boxes, width, height, rng)
        if crop is None:
            crop = self.sampler.negative(boxes, width, height, rng) or (0.0, 0.0, float(width), float(height))
        return self._sample(image, boxes, classes, crop, rng)

    def _sample(
        self, image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, crop: Box, rng: random.Random
    ) -> tuple[Tensor, dict[str, Tensor]]:
        x1, y1, x2, y2 = (round(v) for v in crop)
        pixels = image[y1:y2, x1:x2]
        target_boxes, target_classes = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
        if len(boxes):
            ious = iou_matrix_np(np.asarray([[x1, y1, x2, y2]], np.float64), boxes.astype(np.float64))[0]
            best = int(ious.argmax())
            if ious[best] >= self.sampler.positive_iou:
                target_boxes = (boxes[best : best + 1] - np.array([x1, y1, x1, y1], np.float32)).astype(
                    np.float32
                )
                target_classes = classes[best : best + 1]
        if rng.random() < self.augment.flip:
            pixels = pixels[:, ::-1]
            width = x2 - x1
            target_boxes = np.stack(
                [
                    width - target_boxes[:, 2],
                    target_boxes[:, 1],
                    width - target_boxes[:, 0],
                    target_boxes[:, 3],
                ],
                1,
            )
        pixels = self.augment.photometric(np.ascontiguousarray(pixels), rng)
        tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        return tensor, {
            "boxes": torch.from_numpy(target_boxes).float(),
            "labels": torch.from_numpy(target_classes),
        }


def negative_frames(
    video: str | Path | None, until: int | None, cache_root: Path, *, every: int = 5
) -> list[Path]:
    """Every ``every``-th frame before index ``until`` of ``video`` (all of it when None), saved
    once as JPEG under ``cache_root``; [] without a video."""
    if video is None:
        return []
    video = Path(video)
    folder = cache_root / f"negatives-{video.stem}-until{until}-every{every}"
    done = folder / "done.json"
    if not done.exists():
        folder.mkdir(parents=True, exist_ok=True)
        capture = cv2.VideoCapture(str(video))
        if not capture.isOpened():
            raise ValueError(f"{video}: not a readable video")
        index = 0
        while until is None or index < until:
            ok, frame = capture.read()
            if not ok:
                break
            if index % every == 0:
                cv2.imwrite(str(folder / f"{index:06d}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
            index += 1
        capture.release()
        done.write_text(json.dumps({"video": str(video), "until": until, "frames_read": index}))
    return sorted(folder.glob("*.jpg"))
