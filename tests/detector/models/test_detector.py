"""The Detector contract, checked on every architecture: losses, predict's output, input checks,
checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from detector.models.checkpoint import Checkpoint
from detector.models.detector import Detector
from detector.models.registry import ARCHITECTURES

CLASS_NAMES = ("rect", "disc")
BUILDER = {"backbone": "efficientnet_lite0"}


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def arch(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def detector(arch: str) -> Detector:
    """A small untrained detector of each architecture (64 px, no ImageNet weights: fast)."""
    torch.manual_seed(0)
    return ARCHITECTURES[arch](**BUILDER, class_names=CLASS_NAMES, input_size=64, pretrained=False)


def test_builders_set_class_names_and_input_size(detector: Detector) -> None:
    assert detector.class_names == CLASS_NAMES and detector.input_size == 64
    assert set(detector.box_loss_names) < set(detector.loss_names)


def test_the_base_class_adds_no_parameters_or_buffers(detector: Detector) -> None:
    assert not list(detector.named_parameters(recurse=False))
    assert not list(detector.named_buffers(recurse=False))


def test_image_without_objects_has_exactly_zero_box_loss(detector: Detector) -> None:
    """torchvision's negative-sample test: an image with no boxes trains the classifier only."""
    detector.train()
    image = torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    losses = detector([image], [empty])
    assert set(losses) == set(detector.loss_names)
    for name in detector.box_loss_names:
        assert losses[name].item() == 0.0, name
    for name in set(detector.loss_names) - set(detector.box_loss_names):
        assert losses[name].item() > 0, name
    sum(losses.values()).backward()


def test_predict_gives_one_result_per_image_in_its_own_pixels(detector: Detector) -> None:
    detector.train()  # predict switches to eval mode itself
    detector.score_thresh = 0.0
    images = [torch.randint(0, 256, (3, 50, 90), dtype=torch.uint8), torch.rand(3, 120, 40)]
    timings: dict[str, float] = {}
    results = detector.predict(images, timings=timings)
    assert not detector.training
    stages = {"preprocess", "inference", "nms"}
    assert stages <= set(timings) <= {"proposals", *stages}, "the classic detectors time their proposals"
    assert len(results) == len(images)
    assert any(len(result["boxes"]) for result in results), "score_thresh 0: something to check"
    for result, image in zip(results, images, strict=True):
        height, width = image.shape[-2:]
        boxes, scores, labels = result["boxes"], result["scores"], result["labels"]
        assert boxes.shape == (len(scores), 4) and labels.shape == scores.shape == (len(scores),)
        assert (boxes >= 0).all() and (boxes[:, 0::2] <= width).all() and (boxes[:, 1::2] <= height).all()
        assert set(labels.tolist()) <= set(range(len(CLASS_NAMES)))


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([], "non-empty list"),
        (torch.rand(2, 3, 32, 32), "not one tensor"),
        ([torch.rand(32, 32, 3)], r"images\[0\] has shape \(32, 32, 3\); expected \(3, H, W\)"),
        ([torch.rand(3, 32, 32), torch.rand(1, 32, 32)], r"images\[1\] has shape \(1, 32, 32\)"),
        ([torch.rand(3, 0, 32)], "no pixels"),
        ([torch.zeros(3, 32, 32, dtype=torch.int32)], "expected uint8"),
        ([[[0.0]]], "not a tensor"),
    ],
    ids=["empty", "a batch tensor", "HWC", "grey", "no pixels", "int32", "nested lists"],
)
def test_predict_rejects_what_is_not_a_list_of_chw_images(
    detector: Detector, images: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        detector.predict(images)  # type: ignore[arg-type]


def test_a_checkpoint_rebuilds_the_same_detector(detector: Detector, arch: str, tmp_path: Path) -> None:
    checkpoint = Checkpoint(
        arch=arch, class_names=CLASS_NAMES, input_size=64, builder=BUILDER, state_dict=detector.state_dict()
    )
    rebuilt = Checkpoint.load(checkpoint.save(tmp_path / "model.pt", half=False)).build(score_thresh=0.0)
    assert type(rebuilt) is type(detector)
    assert (rebuilt.class_names, rebuilt.input_size) == (CLASS_NAMES, 64)
    detector.score_thresh = 0.0
    image = [torch.randint(0, 256, (3, 48, 64), dtype=torch.uint8)]
    expected, got = detector.predict(image)[0], rebuilt.predict(image)[0]
    assert len(expected["boxes"]) > 0
    assert all(torch.equal(expected[key], got[key]) for key in ("boxes", "scores", "labels"))
