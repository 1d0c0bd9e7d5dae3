"""Fast R-CNN: selective-search proposals, RoI pooling on one shared feature map, one head."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor

from detector.models.box_ops import iou_matrix
from detector.models.checkpoint import Checkpoint
from detector.models.fast_rcnn import FastRCNNDetector
from detector.models.registry import build_model
from tests.detector.synthetic import synthetic_batch

CLASS_NAMES = ("rect", "disc")


def tiny_fast_rcnn(size: int = 128, **options: object) -> FastRCNNDetector:
    torch.manual_seed(0)
    model = build_model("fast_rcnn_lite0", class_names=CLASS_NAMES, input_size=size, **options)
    assert isinstance(model, FastRCNNDetector)
    return model


def jittered(boxes: Tensor, size: int, *, count: int = 16, seed: int = 0) -> Tensor:
    """Proposals for training: ``count`` jittered copies of each box, and ``count`` random boxes."""
    generator = torch.Generator().manual_seed(seed)
    sides = (boxes[:, 2:] - boxes[:, :2]).repeat_interleave(count, 0).repeat(1, 2)
    near = boxes.repeat_interleave(count, 0) + (torch.rand(len(sides), 4, generator=generator) - 0.5) * sides
    corners = torch.rand(count, 2, generator=generator) * size * 0.7
    return torch.cat([near, torch.cat([corners, corners + size * 0.3], 1)]).clamp(0, size)


def no_proposals(image: Tensor) -> Tensor:
    return torch.zeros(0, 4)


def test_losses_backward_and_precomputed_proposals() -> None:
    images, targets = synthetic_batch(2, 128)
    model = tiny_fast_rcnn(pretrained=False)
    model.train()
    losses = model(images, [{**t, "proposals": jittered(t["boxes"], 128)} for t in targets])
    assert set(losses) == set(model.loss_names) == {"loss_classifier", "loss_box_reg"}
    assert all(value.item() > 0 for value in losses.values())
    sum(losses.values()).backward()
    assert model.backbone.fpn.inner_blocks[0][0].weight.grad is not None
    assert model.roi_heads.box_predictor.bbox_pred.weight.grad is not None


def test_no_objects_no_box_loss_and_no_proposals_still_trains() -> None:
    model = tiny_fast_rcnn(pretrained=False)
    model.train()
    image = torch.randint(0, 256, (3, 96, 128), dtype=torch.uint8)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    for proposals in (jittered(torch.tensor([[10.0, 10, 60, 50]]), 96), torch.zeros(0, 4)):
        losses = model([image], [{**empty, "proposals": proposals}])
        assert losses["loss_box_reg"].item() == 0.0
        assert torch.isfinite(losses["loss_classifier"]) and losses["loss_classifier"].item() > 0
    # no proposals at all, one object: the ground truth alone is a proposal
    target = {"boxes": torch.tensor([[10.0, 10, 60, 50]]), "labels": torch.tensor([1])}
    model.propose = no_proposals
    losses = model([image], [target])
    assert all(torch.isfinite(value) for value in losses.values())
    sum(losses.values()).backward()


def test_predict_with_no_proposals_finds_nothing() -> None:
    model = tiny_fast_rcnn(pretrained=False)
    model.score_thresh = 0.0
    model.propose = no_proposals
    results = model.predict([torch.rand(3, 80, 120), torch.rand(3, 64, 64)])
    assert [len(result["boxes"]) for result in results] == [0, 0]
    assert results[0]["boxes"].shape == (0, 4)


def test_predict_gives_boxes_in_the_input_images_pixels() -> None:
    """With the box regression zeroed, each detection is its proposal: scaled to the input size
    and back, in the (non-square, larger than ``input_size``) image's own pixels."""
    model = tiny_fast_rcnn(pretrained=False)
    model.score_thresh = 0.0
    torch.nn.init.zeros_(model.roi_heads.box_predictor.bbox_pred.weight)
    torch.nn.init.zeros_(model.roi_heads.box_predictor.bbox_pred.bias)
    regions = torch.tensor([[10.0, 20, 110, 90], [200, 100, 290, 170]])
    model.propose = lambda image: regions
    timings: dict[str, float] = {}
    (result,) = model.predict([torch.rand(3, 180, 300)], timings=timings)
    assert set(timings) == {"proposals", "preprocess", "inference", "nms"}
    boxes = result["boxes"]
    assert len(boxes) == 2 * len(CLASS_NAMES), "one per proposal and class"
    assert iou_matrix(boxes, regions).max(dim=1).values.min() > 0.999
    assert set(result["labels"].tolist()) == {0, 1}


@pytest.mark.timeout(300)  # ~15 s on an idle 2-core CPU
def test_training_overfits_two_synthetic_images() -> None:
    images, targets = synthetic_batch(2, 128)
    for seed, target in enumerate(targets):
        target["proposals"] = jittered(target["boxes"], 128, seed=seed)
    model = tiny_fast_rcnn(trainable_stages=2)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(60):
        model.train()
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0]
    # predict runs selective search itself: the shapes' own regions
    for result, target in zip(model.predict(images), targets, strict=True):
        for box, label in zip(target["boxes"], target["labels"], strict=True):
            found = result["labels"] == label
            assert found.any(), f"class {label} not found"
            best = result["scores"][found].argmax()
            assert result["scores"][found][best] > 0.5
            assert iou_matrix(box[None], result["boxes"][found][best][None]).item() > 0.5


def test_checkpoint_round_trip_gives_the_same_detections(tmp_path: Path) -> None:
    options = {"proposals": 50, "proposal_side": 96}
    model = tiny_fast_rcnn(pretrained=False, **options)
    model.score_thresh = 0.0
    path = Checkpoint.from_model(model, "fast_rcnn_lite0", options=options).save(
        tmp_path / "fast.pt", half=False
    )
    rebuilt = Checkpoint.load(path).build(score_thresh=0.0)
    assert isinstance(rebuilt, FastRCNNDetector)
    assert (rebuilt.proposer.max_proposals, rebuilt.proposer.side) == (50, 96)
    images, _ = synthetic_batch(1, 128)
    (before,), (after,) = model.predict(images), rebuilt.predict(images)
    assert len(before["boxes"]) > 0
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(before[key], after[key]), key
