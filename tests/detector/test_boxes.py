"""Box math: the IoU matrix by hand, and its torch and numpy versions agree."""

import numpy as np
import torch

from detector.boxes import iou_matrix_np
from detector.models.box_ops import iou_matrix


def test_iou_matrix_by_hand() -> None:
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    np.testing.assert_allclose(iou_matrix_np(a, b), [[1.0, 50 / 150, 0.0]])
    assert iou_matrix_np(a, np.zeros((0, 4))).shape == (1, 0)


def test_torch_and_numpy_iou_agree() -> None:
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 100, (2, 30, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(1, 40, (2, 30, 2))], axis=-1)
    expected = iou_matrix_np(boxes[0], boxes[1])
    got = iou_matrix(torch.from_numpy(boxes[0]), torch.from_numpy(boxes[1])).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert 0 < (expected > 0).sum() < expected.size
