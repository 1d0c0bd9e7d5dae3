"""The evaluator on a hand-made case whose COCO AP is worked out by hand."""

import pytest
import torch

from detector.training.evaluate import coco_map, operating_points, precision_recall_at


def case() -> tuple[list[dict], list[dict]]:
    targets = [
        {"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0]]), "labels": torch.tensor([0])},
        {"boxes": torch.tensor([[50.0, 50.0, 150.0, 150.0]]), "labels": torch.tensor([0])},
    ]
    predictions = [
        # a perfect hit (0.9), and a hit with IoU 0.6 (0.7): counts at IoU 0.5, not at 0.75
        {"boxes": torch.tensor([[0.0, 0.0, 100.0, 100.0], [200.0, 200.0, 250.0, 250.0]]),
         "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])},
        {"boxes": torch.tensor([[50.0, 50.0, 150.0, 110.0]]), "scores": torch.tensor([0.7]),
         "labels": torch.tensor([0])},
    ]  # fmt: skip
    return predictions, targets


def test_map_matches_the_hand_computed_value() -> None:
    predictions, targets = case()
    map50, map50_95, curves = coco_map(predictions, targets, ["pistol"])
    # ranked TP (0.9), FP (0.8), TP (0.7): precision 1 up to recall 0.5, then 2/3 up to recall 1;
    # COCO interpolates at 101 recall points: (51·1 + 50·2/3) / 101
    assert map50 == pytest.approx((51 + 50 * 2 / 3) / 101, abs=1e-6)
    assert map50_95 < map50
    assert curves["pistol"][0] == pytest.approx(1.0) and curves["pistol"][-1] == pytest.approx(2 / 3)


def test_precision_recall_at_the_operating_threshold() -> None:
    predictions, targets = case()
    assert precision_recall_at(predictions, targets, 0.75) == (0.5, 0.5)
    assert precision_recall_at(predictions, targets, 0.5) == pytest.approx((2 / 3, 1.0))
    assert precision_recall_at(predictions, targets, 0.95) == (1.0, 0.0)
    points = operating_points(predictions, targets, (0.5, 0.75, 0.95))
    assert [p["score"] for p in points] == [0.5, 0.75, 0.95]
    assert points[0]["f1"] == pytest.approx(0.8)  # 2 * (2/3) * 1 / (2/3 + 1)
    assert points[1]["f1"] == pytest.approx(0.5) and points[2]["f1"] == 0.0


def test_no_detections_scores_zero() -> None:
    _, targets = case()
    empty = [
        {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
    ] * 2
    assert coco_map(empty, targets, ["pistol"])[:2] == (0.0, 0.0)
