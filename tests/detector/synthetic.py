"""Synthetic detection data: bright rectangles (class 0) and discs (class 1) on noise."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def synthetic_batch(count: int, size: int, *, seed: int = 0) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for index in range(count):
        image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        boxes, labels = [], []
        for label in range(index % 2 + 1):
            w, h = rng.integers(size // 5, size // 2, 2)
            x, y = rng.integers(0, size - w), rng.integers(0, size - h)
            if label == 0:
                image[y : y + h, x : x + w] = (230, 40, 40)
            else:
                yy, xx = np.mgrid[:size, :size]
                inside = ((xx - x - w / 2) / (w / 2)) ** 2 + ((yy - y - h / 2) / (h / 2)) ** 2 <= 1
                image[inside] = (40, 220, 60)
            boxes.append([x, y, x + w, y + h])
            labels.append(label)
        images.append(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)})
    return images, targets
