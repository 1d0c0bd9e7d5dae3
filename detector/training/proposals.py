"""Fast R-CNN's training data: selective-search proposals computed once per image into a cache,
and a data set whose targets carry them, moved by the augmentation exactly like the boxes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from detector.models.proposals import SelectiveSearch
from detector.training.datasets import Augment, YoloDataset, as_sample, list_samples


def build_proposal_cache(
    image_dir: Path, proposer: SelectiveSearch, cache_root: Path, *, workers: int = 1
) -> Path:
    """Run ``proposer`` once per image of ``image_dir`` (a cached split folder): one ``.npy``
    (float32 ``(K, 4)`` xyxy in that image's pixels) per image stem, in a folder named after the
    image folder and the proposer's settings. Reused once complete (``done.json``); an interrupted
    build resumes where it stopped. ``workers`` > 1 runs that many processes."""
    settings = "ss-" + "-".join(str(value) for value in asdict(proposer).values())  # every field
    target = cache_root / f"proposals-{image_dir.parent.name}-{image_dir.name}-{settings}"
    done = target / "done.json"
    if done.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    images = [image for image, _ in list_samples(image_dir)]
    todo = [image for image in images if not (target / f"{image.stem}.npy").exists()]
    job = partial(_propose, proposer=proposer, target=target)
    if workers > 1:
        with Pool(workers) as pool:
            _drain(pool.imap_unordered(job, todo, chunksize=4), len(todo))
    else:
        _drain(map(job, todo), len(todo))
    done.write_text(
        json.dumps({"source": str(image_dir), "proposer": asdict(proposer), "images": len(images)})
    )
    return target


def _drain(results: Iterable[None], total: int) -> None:
    for _ in tqdm(results, total=total, desc="selective search", mininterval=5):
        pass


def _propose(image_path: Path, *, proposer: SelectiveSearch, target: Path) -> None:
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{image_path}: not a readable image")
    rgb = torch.from_numpy(np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1)))
    temporary = target / f"{image_path.stem}.tmp.npy"
    np.save(temporary, proposer(rgb).numpy().astype(np.float32))
    temporary.replace(target / f"{image_path.stem}.npy")


class ProposalDataset(YoloDataset):
    """A :class:`YoloDataset` whose targets also hold ``"proposals"``: ``(K, 4)`` float xyxy in the
    returned image's pixels, from ``proposal_dir`` (see :func:`build_proposal_cache`). ``augment``
    moves them with the image like the boxes; those left less than ``min_visible`` visible or
    under 3 px go, as boxes do."""

    def __init__(self, image_dir: Path, proposal_dir: Path, *, augment: Augment | None = None) -> None:
        super().__init__(image_dir, augment=augment)
        self.proposal_dir = proposal_dir

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        image, boxes, classes = self.load(index)
        proposals = np.load(self.proposal_dir / f"{self.samples[index][0].stem}.npy")
        if self.augment is not None:
            image, placement = self.augment.apply(image)
            (boxes, keep), (proposals, _) = placement(boxes), placement(proposals)
            classes = classes[keep]
        tensor, target = as_sample(image, boxes, classes)
        return tensor, {**target, "proposals": torch.from_numpy(proposals).float()}
