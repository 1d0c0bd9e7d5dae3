"""Faster R-CNN behind the same contract as YOLO; anchors sized to the data."""

from pathlib import Path

import torch

from detector.models.checkpoint import Checkpoint
from detector.models.faster_rcnn import anchor_sizes_for
from detector.models.registry import build_model
from tests.detector.synthetic import synthetic_batch


def test_train_losses_predict_contract_and_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    images, targets = synthetic_batch(2, 160)
    options = {"anchor_sizes": (24, 48, 64, 96), "proposals": 50}
    model = build_model("frcnn_lite0", class_names=("rect", "disc"), input_size=160, **options)
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    assert set(losses) == set(model.loss_names)
    sum(losses.values()).backward()
    assert any(p.grad is not None for p in model.model.backbone.fpn.parameters())
    model.score_thresh = 0.0
    timings: dict[str, float] = {}
    results = model.predict([images[0], torch.rand(3, 100, 220)], timings=timings)
    assert set(timings) == {"preprocess", "inference", "nms"}
    boxes = results[1]["boxes"]
    assert len(boxes) > 0 and (boxes[:, 0::2] <= 220).all() and (boxes[:, 1::2] <= 100).all()
    assert set(results[0]["labels"].tolist()) <= {0, 1}, "labels are 0-based like YOLO's"
    path = Checkpoint.from_model(model, "frcnn_lite0", options=options).save(tmp_path / "frcnn.pt")
    rebuilt = Checkpoint.load(path).build(score_thresh=0.0)
    assert (rebuilt.class_names, rebuilt.input_size) == (("rect", "disc"), 160)
    assert rebuilt.model.rpn.anchor_generator.sizes == ((24,), (48,), (64,), (96,))
    assert rebuilt.model.rpn._post_nms_top_n["testing"] == 50


def test_anchor_sizes_follow_the_box_distribution() -> None:
    sides = torch.tensor([10.0, 20, 40, 80, 160, 320]).repeat_interleave(10)
    boxes = torch.stack([torch.zeros_like(sides), torch.zeros_like(sides), sides, sides], 1)
    sizes = anchor_sizes_for(boxes, levels=4)
    assert list(sizes) == sorted(sizes) and sizes[0] <= 20 and sizes[-1] >= 160
