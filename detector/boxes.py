"""Pure box math on numpy ``xyxy`` boxes (x1, y1, x2, y2 in pixels, x2 > x1, y2 > y1), for the
tracker and the serving path (torch-free; the models' tensor twins are in
``detector/models/box_ops.py``)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def iou_matrix_np(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float64]:
    """IoU of every box in ``a`` (N, 4) with every one in ``b`` (M, 4)."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(-1)
    area_a = np.clip(a[:, 2:] - a[:, :2], 0, None).prod(-1)
    area_b = np.clip(b[:, 2:] - b[:, :2], 0, None).prod(-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
