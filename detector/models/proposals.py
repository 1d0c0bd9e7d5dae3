"""Where to look, before a CNN looks: the region sources of the classic detectors.

* :class:`SlidingWindows`: every square window of a multi-scale grid (the oldest detector: a
  classifier slid over the image).
* :class:`SelectiveSearch`: class-agnostic region proposals from a hierarchical grouping of
  superpixels (Uijlings et al. 2013), as R-CNN and Fast R-CNN used them; OpenCV-contrib's
  ``ximgproc.segmentation`` implementation.

Both take one CHW RGB image (``uint8`` 0–255 or float 0–1) and return ``(K, 4)`` float xyxy boxes
in that image's pixels. Neither has weights; Faster R-CNN replaces them with a learnt RPN.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

_LIBC = ctypes.CDLL(None)
"""OpenCV's selective search ranks its regions with C's ``rand()``: seeding it makes the ranking,
and so which proposals are kept, the same on every call."""

DEFAULT_WINDOW_SCALES = (0.2, 0.3, 0.45, 0.7, 1.0)
"""Window sides as fractions of the image's shorter side."""


@dataclass(frozen=True)
class SlidingWindows:
    """Square windows of side ``scale × shorter side`` for each scale, ``stride`` window sides apart
    (0.5: half-overlapping), the last row and column flush with the image edge."""

    scales: Sequence[float] = DEFAULT_WINDOW_SCALES
    stride: float = 0.5

    def __post_init__(self) -> None:
        if not self.scales or not all(0 < s <= 1 for s in self.scales):
            raise ValueError(f"window scales must be in (0, 1], got {tuple(self.scales)}")
        if not 0 < self.stride <= 1:
            raise ValueError(f"window stride must be in (0, 1], got {self.stride}")

    def __call__(self, image: Tensor) -> Tensor:
        height, width = (int(v) for v in image.shape[-2:])
        return self.windows(width, height)

    def windows(self, width: int, height: int) -> Tensor:
        boxes = []
        for scale in self.scales:
            side = scale * min(width, height)
            step = max(1.0, self.stride * side)
            xs = _positions(width - side, step)
            ys = _positions(height - side, step)
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            corners = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)
            boxes.append(torch.cat([corners, corners + side], dim=1))
        return torch.cat(boxes)


def _positions(room: float, step: float) -> Tensor:
    """Window offsets from 0 to ``room`` (inclusive), evenly spread, at most ``step`` apart."""
    count = math.ceil(room / step - 1e-6) + 1 if room > 0 else 1
    return torch.linspace(0, max(room, 0.0), count)


@dataclass(frozen=True)
class SelectiveSearch:
    """Selective search proposals, the first ``max_proposals`` of its ranking.

    The image is first shrunk so its longer side is at most ``side`` pixels (the cost grows with the
    pixel count: about 0.35 s at 384 px, 0.15 s at 256 on one core here, fast mode); boxes are scaled
    back. ``mode`` is ``"fast"`` (one colour space, two strategies) or ``"quality"`` (many more, ~5×
    slower). Boxes with a side under ``min_size`` pixels (of the input image) are dropped. The
    ranking's randomness is seeded with ``seed`` (through C's ``srand``, process-wide) on each call,
    so the same image always gets the same proposals."""

    max_proposals: int = 500
    side: int = 384
    mode: str = "fast"
    min_size: float = 8.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("fast", "quality"):
            raise ValueError(f"selective search mode must be 'fast' or 'quality', got {self.mode!r}")
        if self.max_proposals < 1 or self.side < 16:
            raise ValueError("selective search needs max_proposals >= 1 and side >= 16")

    def __call__(self, image: Tensor) -> Tensor:
        pixels = _to_bgr(image)
        height, width = pixels.shape[:2]
        scale = min(1.0, self.side / max(height, width))
        if scale < 1:
            pixels = cv2.resize(
                pixels,
                (max(1, round(width * scale)), max(1, round(height * scale))),
                interpolation=cv2.INTER_AREA,
            )
        search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
        search.setBaseImage(pixels)
        if self.mode == "fast":
            search.switchToSelectiveSearchFast()
        else:
            search.switchToSelectiveSearchQuality()
        _LIBC.srand(self.seed)
        rects = search.process()
        if len(rects) == 0:
            return torch.zeros(0, 4)
        boxes = torch.from_numpy(rects.astype(np.float32))
        boxes[:, 2:] += boxes[:, :2]
        boxes /= scale
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        sides = boxes[:, 2:] - boxes[:, :2]
        boxes = boxes[(sides >= self.min_size).all(dim=1)]
        return boxes[: self.max_proposals]


def _to_bgr(image: Tensor) -> np.ndarray:
    """CHW RGB tensor (uint8 or float 0–1) → HWC BGR uint8 array, as OpenCV wants it."""
    if image.dtype != torch.uint8:
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(image.cpu().numpy().transpose(1, 2, 0)[..., ::-1])
