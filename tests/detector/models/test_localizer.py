"""The localization model, and the sliding-window and R-CNN detectors built on it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from detector.models.box_ops import iou_matrix
from detector.models.checkpoint import Checkpoint, CheckpointError, reuse_localizer
from detector.models.localizer import Localizer, boxes_to_regions, regions_to_boxes, warp_regions
from detector.models.proposals import SelectiveSearch, SlidingWindows
from detector.models.regions import RegionDetector
from detector.models.registry import build_model
from detector.training.crops import CropDataset, CropSampler
from detector.training.datasets import YoloDataset, collate
from tests.detector.synthetic import synthetic_batch


def one_rectangle(size: int, box: tuple[int, int, int, int], seed: int = 0) -> torch.Tensor:
    """A red rectangle (the class) on dark noise, CHW uint8."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 60, (3, size, size), dtype=torch.uint8, generator=generator)
    x1, y1, x2, y2 = box
    image[:, y1:y2, x1:x2] = torch.tensor([230, 40, 40], dtype=torch.uint8)[:, None, None]
    return image


def trained_localizer(steps: int = 150) -> Localizer:
    """The ImageNet Lite0 localizer (3 stages trained) overfit on eight 64-px crops: four with one
    rectangle, four of noise."""
    torch.manual_seed(0)
    model = build_model("localizer_lite0", class_names=("rect",), input_size=64, trainable_stages=3)
    boxes = [(8, 10, 40, 50), (20, 4, 60, 30), (2, 30, 34, 62), (16, 16, 48, 48)]
    images = [one_rectangle(64, box, seed) for seed, box in enumerate(boxes)]
    images += [one_rectangle(64, (0, 0, 0, 0), seed=10 + i) for i in range(4)]
    targets = [{"boxes": torch.tensor([b], dtype=torch.float32), "labels": torch.tensor([0])} for b in boxes]
    targets += [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 4
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def localizer() -> Localizer:
    return trained_localizer()


def red_rectangle_scene(size: int, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A BGR frame of dark noise with one red rectangle of a random size and place, and its box."""
    image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    w, h = rng.integers(size // 6, size // 3, 2)
    x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
    image[y : y + h, x : x + w] = (40, 40, 230)
    return image, (x, y, x + int(w), y + int(h))


@pytest.fixture(scope="module")
def crop_trained(tmp_path_factory: pytest.TempPathFactory) -> Localizer:
    """A localizer trained as R-CNN fine-tunes: on crops (``CropDataset``) of eight scenes in YOLO
    layout, 4 epochs of 768 seeded crops (~30 s)."""
    root = tmp_path_factory.mktemp("scenes")
    (root / "images").mkdir()
    (root / "labels").mkdir()
    rng = np.random.default_rng(0)
    for index in range(8):
        image, (x1, y1, x2, y2) = red_rectangle_scene(160, rng)
        cv2.imwrite(str(root / "images" / f"{index}.png"), image)
        cx, cy, w, h = (x1 + x2) / 320, (y1 + y2) / 320, (x2 - x1) / 160, (y2 - y1) / 160
        (root / "labels" / f"{index}.txt").write_text(f"0 {cx} {cy} {w} {h}\n")
    crops = CropDataset(YoloDataset(root / "images"), CropSampler(), crops_per_image=96, seed=0)
    torch.manual_seed(0)
    model = build_model("localizer_lite0", class_names=("rect",), input_size=64, trainable_stages=3)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    model.train()
    for _ in range(4):
        for images, targets in DataLoader(crops, batch_size=32, shuffle=True, collate_fn=collate):
            loss = sum(model(images, targets).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def unseen_scenes(count: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """192-px scenes none of the training crops came from: CHW RGB uint8, and each one's box."""
    scenes = []
    for seed in range(99, 99 + count):
        image, box = red_rectangle_scene(192, np.random.default_rng(seed))
        frame = torch.from_numpy(np.ascontiguousarray(image[..., ::-1])).permute(2, 0, 1).contiguous()
        scenes.append((frame, torch.tensor([box], dtype=torch.float32)))
    return scenes


@pytest.mark.parametrize(
    "proposer",
    [SelectiveSearch(max_proposals=500), SlidingWindows(stride=0.25)],
    ids=["rcnn", "sliding-window"],
)
def test_region_detectors_find_the_object_in_new_scenes(
    crop_trained: Localizer, proposer: SelectiveSearch | SlidingWindows
) -> None:
    """Trained on crops only, R-CNN and the sliding window put their best box on the rectangle in each
    of eight scenes none of the crops came from, at a PASCAL-like IoU on average. One scene's IoU
    swings with the host's float kernels (0.45-0.84 seen on one scene across hosts; mean of eight
    0.62 / 0.63 on the AMX host), so the bar is on the mean."""
    detector = RegionDetector(crop_trained, proposer)
    detector.score_thresh = 0.5
    ious = []
    for frame, box in unseen_scenes():
        result = detector.predict([frame])[0]
        assert len(result["boxes"]) >= 1
        ious.append(iou_matrix(result["boxes"][:1], box).item())
    assert min(ious) > 0.3, ious
    assert sum(ious) / len(ious) > 0.5, ious


def test_region_fractions_round_trip() -> None:
    regions = torch.tensor([[10.0, 20, 110, 70], [0, 0, 50, 50]])
    boxes = torch.tensor([[30.0, 25, 90, 95], [-5, 10, 20, 40]])
    assert torch.allclose(regions_to_boxes(boxes_to_regions(boxes, regions), regions), boxes, atol=1e-4)
    assert torch.allclose(boxes_to_regions(regions, regions), torch.tensor([[0.5, 0.5, 1, 1]] * 2))


def test_warp_regions_crops_and_resizes_each_region() -> None:
    image = torch.zeros(3, 40, 60)
    image[:, 10:20, 30:50] = 1.0
    crops = warp_regions(image, torch.tensor([[30.0, 10, 50, 20], [0, 0, 20, 10]]), 8)
    assert crops.shape == (2, 3, 8, 8)
    assert crops[0, :, 1:-1, 1:-1].min() > 0.99, "inside: the rectangle (the border pixels blend bilinearly)"
    assert crops[1].max() < 0.01


def test_the_localizer_learns_class_and_box(localizer: Localizer) -> None:
    """α·BCE + β·smooth-L1 on a few images: it tells which show a rectangle, and where."""
    localizer.score_thresh = 0.5
    trained_on = [one_rectangle(64, (8, 10, 40, 50), seed=0), one_rectangle(64, (0, 0, 0, 0), seed=10)]
    found = localizer.predict(trained_on)
    assert len(found[0]["boxes"]) == 1 and len(found[1]["boxes"]) == 0
    assert iou_matrix(found[0]["boxes"], torch.tensor([[8.0, 10, 40, 50]])).item() > 0.6


def test_the_localizer_gives_boxes_in_the_input_images_pixels(localizer: Localizer) -> None:
    """A 2× larger image of the same scene: the box doubles."""
    localizer.score_thresh = 0.0
    image = one_rectangle(64, (8, 10, 40, 50), seed=0)
    small = localizer.predict([image])[0]["boxes"]
    big = localizer.predict([torch.nn.functional.interpolate(image[None].float() / 255, scale_factor=2)[0]])
    assert torch.allclose(big[0]["boxes"], small * 2, rtol=0.1, atol=3)


def test_sliding_window_finds_the_object_in_a_larger_frame(localizer: Localizer) -> None:
    """The crop classifier slid over a 192-px frame finds a rectangle where one window sees what it
    was trained on, and nothing elsewhere."""
    detector = RegionDetector(localizer, SlidingWindows(scales=(1 / 3,), stride=0.5))
    detector.score_thresh = 0.5
    frame = one_rectangle(192, (0, 0, 0, 0), seed=20)
    frame[:, 64:128, 64:128] = one_rectangle(64, (8, 10, 40, 50), seed=0)
    timings: dict[str, float] = {}
    result = detector.predict([frame], timings=timings)[0]
    assert set(timings) == {"proposals", "preprocess", "inference", "nms"}
    assert len(detector.proposer(frame)) == 25
    assert len(result["boxes"]) >= 1
    assert iou_matrix(result["boxes"][:1], torch.tensor([[72.0, 74, 104, 114]])).item() > 0.6


def test_sliding_windows_tile_the_image_at_every_scale() -> None:
    windows = SlidingWindows(scales=(0.5, 1.0), stride=0.5).windows(200, 100)
    sides = windows[:, 2:] - windows[:, :2]
    assert torch.allclose(sides[:, 0], sides[:, 1]), "square windows"
    assert set(sides[:, 0].tolist()) == {50.0, 100.0}
    assert windows[:, 0].min() == 0 and windows[:, 2].max() == 200 and windows[:, 3].max() == 100
    assert len(windows) == 7 * 3 + 3  # 50 px: 7 across, 3 down; 100 px: 3 across, 1 down
    with pytest.raises(ValueError, match="scales"):
        SlidingWindows(scales=(0.0,))


def test_selective_search_is_repeatable_and_bounded() -> None:
    image, _ = synthetic_batch(1, 96)
    search = SelectiveSearch(max_proposals=20, side=64)
    first, second = search(image[0]), search(image[0])
    assert torch.equal(first, second), "the ranking is seeded"
    assert 0 < len(first) <= 20
    assert (first[:, 2:] > first[:, :2]).all() and first.min() >= 0 and first.max() <= 96
    with pytest.raises(ValueError, match="mode"):
        SelectiveSearch(mode="slow")


def test_a_localizer_checkpoint_serves_sliding_window_and_rcnn(localizer: Localizer, tmp_path: Path) -> None:
    saved = Checkpoint.from_model(localizer, "localizer_lite0").save(tmp_path / "localizer.pt", half=False)
    rcnn = reuse_localizer(Checkpoint.load(saved), "rcnn_lite0", proposals=50).build()
    assert isinstance(rcnn, RegionDetector) and rcnn.proposer.max_proposals == 50
    crops = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        expected, got = localizer.score_regions(crops), rcnn.localizer.score_regions(crops)
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))
    back = reuse_localizer(Checkpoint.from_model(rcnn, "rcnn_lite0"), "localizer_lite0").build()
    assert set(back.state_dict()) == set(localizer.state_dict())
    with pytest.raises(CheckpointError, match="cannot reuse"):
        reuse_localizer(Checkpoint.load(saved), "yolo_lite0")
