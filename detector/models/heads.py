"""The dense, anchor-free YOLO head: per location of every level, class logits and a box.

Each location (anchor point) of a level with stride ``s`` sits at ``((x+0.5)s, (y+0.5)s)`` and
predicts its distances to the box's left, top, right and bottom edges (``ltrb``, in pixels),
decoupled from the class branch as in YOLOX / YOLOv8 / FCOS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detector.models.layers import DepthwiseSeparable


@dataclass
class HeadOutput:
    """Dense predictions of a batch: A = anchor points over all levels."""

    class_logits: Tensor  # (N, A, C)
    ltrb: Tensor  # (N, A, 4) distances in input pixels, >= 0
    points: Tensor  # (A, 2) anchor centres, input pixels
    strides: Tensor  # (A,)

    def boxes(self) -> Tensor:
        """Decoded xyxy boxes (N, A, 4)."""
        return torch.cat([self.points - self.ltrb[..., :2], self.points + self.ltrb[..., 2:]], dim=-1)


class DenseHead(nn.Module):
    """Class and box towers shared by all levels (the levels differ by a learnt scale)."""

    def __init__(self, channels: int, num_classes: int, strides: Sequence[int], *, depth: int = 2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.strides = tuple(strides)
        self.class_tower = nn.Sequential(*(DepthwiseSeparable(channels, channels) for _ in range(depth)))
        self.box_tower = nn.Sequential(*(DepthwiseSeparable(channels, channels) for _ in range(depth)))
        self.class_out = nn.Conv2d(channels, num_classes, 1)
        self.box_out = nn.Conv2d(channels, 4, 1)
        self.level_scales = nn.Parameter(torch.ones(len(self.strides)))
        prior = 0.01  # initial foreground probability: stable BCE at the start (RetinaNet)
        nn.init.constant_(self.class_out.bias, -math.log((1 - prior) / prior))
        nn.init.normal_(self.class_out.weight, std=0.01)
        nn.init.normal_(self.box_out.weight, std=0.01)
        nn.init.constant_(self.box_out.bias, 1.0)
        self._grids: dict[tuple[int, int, int, str], Tensor] = {}

    def forward(self, features: list[Tensor]) -> HeadOutput:
        logits, ltrbs, points, strides = [], [], [], []
        for level, (feature, stride) in enumerate(zip(features, self.strides, strict=True)):
            height, width = feature.shape[-2:]
            cls = self.class_out(self.class_tower(feature))
            box = self.box_out(self.box_tower(feature))
            logits.append(cls.flatten(2).transpose(1, 2))
            ltrb = F.softplus(box * self.level_scales[level]) * stride
            ltrbs.append(ltrb.flatten(2).transpose(1, 2))
            grid = self._grid(height, width, stride, feature.device)
            points.append(grid)
            strides.append(grid.new_full((grid.shape[0],), float(stride)))
        return HeadOutput(
            class_logits=torch.cat(logits, 1),
            ltrb=torch.cat(ltrbs, 1),
            points=torch.cat(points, 0),
            strides=torch.cat(strides, 0),
        )

    def _grid(self, height: int, width: int, stride: int, device: torch.device) -> Tensor:
        key = (height, width, stride, str(device))
        if key not in self._grids or torch.jit.is_tracing():
            ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
            xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
            grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
            self._grids[key] = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)
        return self._grids[key]
