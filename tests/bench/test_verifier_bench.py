"""``bench/verifier.py``'s tables on hand-made detections: what the verifier keeps, and counts."""

from __future__ import annotations

import pytest
import torch

from bench.verifier import by_overlap, table


def prediction(boxes: list[list[float]], scores: list[float], verify: list[float]) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.tensor(boxes).reshape(-1, 4),
        "scores": torch.tensor(scores),
        "labels": torch.zeros(len(scores), dtype=torch.int64),
        "verify": torch.tensor(verify),
    }


PISTOL = [0.0, 0.0, 10.0, 10.0]
TARGETS = [{"boxes": torch.tensor([PISTOL]), "labels": torch.tensor([0])}] * 2
PREDICTIONS = [  # a hit, background, a duplicate of the hit (IoU 0.68)
    prediction([PISTOL, [50, 50, 60, 60], [1, 1, 11, 11]], [0.9, 0.8, 0.7], [0.95, 0.2, 0.6]),
    prediction([PISTOL], [0.3], [-1.0]),  # below the operating score: never verified
]


def test_the_table_counts_what_each_verify_threshold_keeps() -> None:
    rows = {row["verify"]: row for row in table(PREDICTIONS, TARGETS, 0.4)}
    alone = rows[None]
    assert (alone["kept"], alone["true_pos"], alone["false_pos"]) == (3, 1, 2)
    assert alone["precision"] == pytest.approx(1 / 3) and alone["recall"] == 0.5
    strict = rows[0.5]
    assert (strict["kept"], strict["true_pos"], strict["false_pos"]) == (2, 1, 1)
    assert (rows[0.9]["kept"], rows[0.9]["precision"], rows[0.9]["recall"]) == (1, 1.0, 0.5)
    assert all(row["score"] == 0.4 for row in rows.values())


def test_false_detections_are_told_apart_by_their_overlap_with_a_pistol() -> None:
    rows = {row["overlap"].split(" (")[0]: row for row in by_overlap(PREDICTIONS, TARGETS, 0.4)}
    assert {name: row["detections"] for name, row in rows.items()} == {
        "on a pistol": 2, "near one": 0, "background": 1,
    }  # fmt: skip
    assert rows["on a pistol"]["verify_below_0.9"] == 1 and rows["background"]["verify_below_0.5"] == 1
    assert rows["near one"]["median_verify"] is None
