"""The YOLO detector: contract, loss semantics, NMS, overfitting a few synthetic images."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torchvision.ops import batched_nms

from detector.models.box_ops import iou_matrix
from detector.models.registry import build_model
from detector.models.transform import LetterboxTransform
from detector.models.yolo import YOLO
from detector.training.evaluate import coco_map
from tests.detector.synthetic import synthetic_batch


def tiny_yolo(class_names: tuple[str, ...] = ("rect", "disc"), size: int = 128) -> YOLO:
    model = build_model("yolo_lite0", class_names=class_names, input_size=size, trainable_stages=None)
    assert isinstance(model, YOLO)
    return model


def test_predict_returns_boxes_in_each_input_images_pixels() -> None:
    model = tiny_yolo()
    model.decode_config = replace(model.decode_config, score_thresh=0.0, max_detections=50)
    images = [torch.randint(0, 255, (3, 90, 200), dtype=torch.uint8), torch.rand(3, 300, 120)]
    results = model.predict(images)
    assert len(results) == 2
    for result, image in zip(results, images, strict=True):
        height, width = image.shape[-2:]
        boxes = result["boxes"]
        assert boxes.shape[1] == 4 and 0 < len(boxes) <= 50
        assert (boxes[:, 0::2] <= width).all() and (boxes[:, 1::2] <= height).all() and (boxes >= 0).all()
        assert result["scores"].shape == result["labels"].shape == (len(boxes),)
        assert set(result["labels"].tolist()) <= {0, 1}


def test_letterbox_round_trip() -> None:
    transform = LetterboxTransform(128)
    images = [torch.zeros(3, 64, 256), torch.zeros(3, 200, 100)]
    boxes = [torch.tensor([[10.0, 5.0, 100.0, 60.0]]), torch.tensor([[0.0, 0.0, 100.0, 200.0]])]
    batch, metas, targets = transform(images, [{"boxes": b} for b in boxes])
    assert batch.shape == (2, 3, 128, 128)
    assert torch.allclose(targets[0]["boxes"], boxes[0] * 0.5)
    back = transform.postprocess([{"boxes": t["boxes"]} for t in targets], metas)
    for restored, original in zip(back, boxes, strict=True):
        assert torch.allclose(restored["boxes"], original)


def test_every_ground_truth_box_gets_a_positive_even_a_tiny_one() -> None:
    model = tiny_yolo(("pistol",))
    model.train()
    images = [torch.zeros(3, 128, 128)]
    tiny = {"boxes": torch.tensor([[60.0, 60.0, 62.0, 62.0]]), "labels": torch.tensor([0])}
    losses = model(images, [tiny])
    assert losses["giou"].item() > 0, "a box smaller than every stride still trains the box branch"


@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_matches_brute_force(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(300, 2, generator=generator) * 200
    sizes = torch.rand(300, 2, generator=generator) * 60 + 5
    boxes = torch.cat([corners, corners + sizes], 1)
    scores = torch.rand(300, generator=generator)
    labels = torch.randint(0, 3, (300,), generator=generator)
    keep = batched_nms(boxes, scores, labels, 0.5)
    expected = []
    for index in scores.argsort(descending=True).tolist():
        same_class = [k for k in expected if labels[k] == labels[index]]
        if not same_class or iou_matrix(boxes[index : index + 1], boxes[same_class]).max() <= 0.5:
            expected.append(index)
    assert keep.tolist() == expected


@pytest.mark.timeout(600)  # ~20 s on an idle 2-core CPU
def test_training_overfits_a_few_synthetic_images() -> None:
    torch.manual_seed(0)
    images, targets = synthetic_batch(6, 160)
    model = tiny_yolo(size=160)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        model.train()
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    model.score_thresh = 0.001
    map50, map50_95, _ = coco_map(model.predict(images), targets, ["rect", "disc"])
    assert map50 > 0.95
    assert map50_95 > 0.5
