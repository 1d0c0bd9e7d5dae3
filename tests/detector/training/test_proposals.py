"""Fast R-CNN's training data: the proposal cache, and proposals moved by the augmentation like boxes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from detector.models.proposals import SelectiveSearch
from detector.training.datasets import Augment
from detector.training.proposals import ProposalDataset, build_proposal_cache
from tests.detector.synthetic import synthetic_batch

PROPOSER = SelectiveSearch(max_proposals=30, side=96)


def write_split(root: Path, count: int = 2, size: int = 96) -> Path:
    """A YOLO-layout folder of synthetic images (``root/images``, ``root/labels``)."""
    images, targets = synthetic_batch(count, size)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for index, (image, target) in enumerate(zip(images, targets, strict=True)):
        cv2.imwrite(str(root / "images" / f"{index}.jpg"), image.permute(1, 2, 0).numpy()[..., ::-1])
        boxes = target["boxes"].numpy() / size
        rows = [
            f"{label} {(x0 + x1) / 2} {(y0 + y1) / 2} {x1 - x0} {y1 - y0}"
            for label, (x0, y0, x1, y1) in zip(target["labels"].tolist(), boxes, strict=True)
        ]
        (root / "labels" / f"{index}.txt").write_text("\n".join(rows))
    return root / "images"


def test_the_cache_holds_one_array_per_image_and_is_reused(tmp_path: Path) -> None:
    image_dir = write_split(tmp_path / "split")
    folder = build_proposal_cache(image_dir, PROPOSER, tmp_path / "cache")
    arrays = {path.stem: np.load(path) for path in folder.glob("*.npy")}
    assert set(arrays) == {"0", "1"}
    for stem, boxes in arrays.items():
        image = cv2.imread(str(image_dir / f"{stem}.jpg"))
        expected = PROPOSER(torch.from_numpy(image[..., ::-1].copy()).permute(2, 0, 1))
        assert boxes.dtype == np.float32 and np.array_equal(boxes, expected.numpy())
    assert json.loads((folder / "done.json").read_text())["images"] == 2
    (folder / "0.npy").unlink()
    assert build_proposal_cache(image_dir, PROPOSER, tmp_path / "cache") == folder
    assert not (folder / "0.npy").exists(), "a finished cache is not rebuilt"
    parallel = build_proposal_cache(image_dir, PROPOSER, tmp_path / "parallel", workers=2)
    assert np.array_equal(np.load(parallel / "1.npy"), arrays["1"])


def test_augmentation_moves_proposals_exactly_like_the_boxes(tmp_path: Path) -> None:
    image_dir = write_split(tmp_path / "split", count=1, size=200)
    plain = ProposalDataset(image_dir, tmp_path / "proposals")
    _, boxes, _ = plain.load(0)
    # proposals: a copy of the ground-truth box, and the whole image
    (tmp_path / "proposals").mkdir()
    np.save(tmp_path / "proposals" / "0.npy", np.concatenate([boxes, [[0, 0, 200, 200]]]).astype(np.float32))
    _, target = plain[0]
    assert torch.equal(target["proposals"][:1], target["boxes"])
    kept = set()
    for seed in range(16):  # zooming in up to 3×: some crops lose the box
        augment = Augment(size=128, scale=(0.5, 3.0), seed=seed)
        image, target = ProposalDataset(image_dir, tmp_path / "proposals", augment=augment)[0]
        assert image.shape == (3, 128, 128)
        proposals, gt = target["proposals"], target["boxes"]
        assert ((proposals >= 0) & (proposals <= 128)).all()
        copies = (proposals[:, None] == gt[None]).all(dim=2).any(dim=1)
        assert copies.sum() == len(gt), "the box's copy is kept exactly when the box is, and equal to it"
        kept.add(len(gt))
    assert kept == {0, 1}
