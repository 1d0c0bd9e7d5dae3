"""YOLO-format datasets (``data.yaml`` + images/ + labels/), a pre-resized cache, and the
augmentation pipeline used for training.

Labels are ``class cx cy w h`` normalised to the image. Samples are ``(image, target)`` with the
image a CHW ``uint8`` RGB tensor and the target ``{"boxes": (G, 4) xyxy pixels of that image,
"labels": (G,) int64}``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import torch
import yaml
from torch import Tensor
from torch.utils.data import Dataset

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``data.yaml``: split name → image folder, and the class names."""

    root: Path
    splits: dict[str, Path]
    names: tuple[str, ...]

    @classmethod
    def load(cls, path: str | Path) -> DataSpec:
        path = Path(path)
        spec = yaml.safe_load(path.read_text())
        if not isinstance(spec, dict) or "names" not in spec:
            raise ValueError(f"{path}: a YOLO data.yaml needs 'names' and split folders")
        root = (path.parent / spec.get("path", ".")).resolve()
        names = spec["names"]
        names = tuple(names.values()) if isinstance(names, dict) else tuple(names)
        splits = {split: root / spec[split] for split in ("train", "val", "test") if spec.get(split)}
        return cls(root=root, splits=splits, names=names)

    def fingerprint(self, split: str) -> str:
        """Hash of the split's file names, sizes and labels: identifies the data a model saw."""
        digest = hashlib.sha256()
        for image, label in list_samples(self.splits[split]):
            digest.update(image.name.encode())
            digest.update(str(image.stat().st_size).encode())
            digest.update(label.read_bytes() if label.exists() else b"")
        return digest.hexdigest()[:16]


def list_samples(image_dir: Path) -> list[tuple[Path, Path]]:
    """(image, label) pairs: labels live in the sibling ``labels`` tree, same stem, ``.txt``."""
    label_dir = Path(str(image_dir).replace("/images", "/labels", 1))
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return [(image, label_dir / f"{image.stem}.txt") for image in images]


def read_labels(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """YOLO label file → (boxes xyxy pixels (G, 4) float32, classes (G,) int64)."""
    rows = (
        np.loadtxt(path, ndmin=2, dtype=np.float32)
        if path.exists() and path.stat().st_size
        else np.zeros((0, 5))
    )
    if rows.shape[1] != 5:
        raise ValueError(f"{path}: expected 5 columns per line, got {rows.shape[1]}")
    cx, cy, w, h = rows[:, 1] * width, rows[:, 2] * height, rows[:, 3] * width, rows[:, 4] * height
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return boxes, rows[:, 0].astype(np.int64)


def write_labels(path: Path, boxes: np.ndarray, classes: np.ndarray, width: int, height: int) -> None:
    """(boxes xyxy pixels, classes) → YOLO label file: the inverse of :func:`read_labels`."""
    rows = [f"{c} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} "
            f"{(y2 - y1) / height:.6f}\n"
            for c, (x1, y1, x2, y2) in zip(classes, boxes, strict=True)]  # fmt: skip
    path.write_text("".join(rows))


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB HWC ``uint8``; ValueError when it is not a readable image."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def log_uniform(rng: random.Random | ModuleType, low: float, high: float) -> float:
    """A draw between ``low`` and ``high``, uniform in log scale (each factor of 2 as likely)."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def build_cache(spec: DataSpec, split: str, *, max_side: int, cache_root: Path) -> Path:
    """Resize a split's images once (longer side ≤ ``max_side``, JPEG q95) into a cache folder
    with the same layout; labels are normalised, so they are copied as they are. Reused when the
    source fingerprint matches."""
    fingerprint = spec.fingerprint(split)
    target = cache_root / f"{split}-{max_side}-{fingerprint}" / "images"
    done = target.parent / "done.json"
    if done.exists():
        return target
    labels = target.parent / "labels"
    target.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for image_path, label_path in list_samples(spec.splits[split]):
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{image_path}: not a readable image")
        height, width = image.shape[:2]
        scale = max_side / max(height, width)
        if scale < 1:
            image = cv2.resize(
                image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA
            )
        cv2.imwrite(str(target / f"{image_path.stem}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        (labels / f"{image_path.stem}.txt").write_bytes(
            label_path.read_bytes() if label_path.exists() else b""
        )
    done.write_text(json.dumps({"source": str(spec.splits[split]), "max_side": max_side}))
    return target


class YoloDataset(Dataset):
    """Images and boxes of one folder; ``augment`` (training) returns ``size``×``size`` squares."""

    def __init__(self, image_dir: Path, *, augment: Augment | None = None) -> None:
        self.samples = list_samples(image_dir)
        if not self.samples:
            raise ValueError(f"{image_dir}: no images")
        self.augment = augment

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """RGB HWC uint8 image, boxes xyxy, classes."""
        image_path, label_path = self.samples[index]
        image = read_rgb(image_path)
        boxes, classes = read_labels(label_path, image.shape[1], image.shape[0])
        return image, boxes, classes

    def image_sizes(self) -> list[tuple[int, int]]:
        """(width, height) of every image, read from the file headers only."""
        from PIL import Image

        sizes = []
        for image_path, _ in self.samples:
            with Image.open(image_path) as image:
                sizes.append(image.size)
        return sizes

    def boxes_at(self, input_size: int) -> Tensor:
        """Every box of the data set as it appears once its image is letterboxed to ``input_size``."""
        boxes = []
        for (width, height), (_, label_path) in zip(self.image_sizes(), self.samples, strict=True):
            image_boxes, _ = read_labels(label_path, width, height)
            boxes.append(image_boxes * (input_size / max(width, height)))
        return torch.from_numpy(np.concatenate(boxes)) if boxes else torch.zeros(0, 4)

    def __getitem__(self, index: int) -> tuple[Tensor, dict[str, Tensor]]:
        image, boxes, classes = self.load(index)
        if self.augment is not None:
            image, boxes, classes = self.augment(image, boxes, classes)
        return as_sample(image, boxes, classes)


def as_sample(image: np.ndarray, boxes: np.ndarray, classes: np.ndarray) -> tuple[Tensor, dict[str, Tensor]]:
    """RGB HWC image, boxes, classes → a sample: CHW ``uint8`` tensor, target dict."""
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    return tensor, {"boxes": torch.from_numpy(boxes).float(), "labels": torch.from_numpy(classes)}


def collate(batch: list[tuple[Tensor, dict[str, Tensor]]]) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)


MIN_BOX_SIDE = 3.0
"""Boxes narrower or lower than this (canvas pixels) after an augmentation are dropped."""
QUARTER_TURNS = {1: cv2.ROTATE_90_CLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_COUNTERCLOCKWISE}
"""``cv2.rotate`` codes by clockwise quarter turns."""


def turn_image(image: np.ndarray, turns: int) -> np.ndarray:
    """``image`` turned clockwise by ``turns`` (1-3) quarter turns."""
    return cv2.rotate(image, QUARTER_TURNS[turns])


def turn_boxes(boxes: np.ndarray, turns: int, size: tuple[int, int]) -> np.ndarray:
    """xyxy ``boxes`` of an image of ``size`` (width, height) as they lie on it after
    :func:`turn_image` (exact: a quarter turn keeps boxes axis-aligned)."""
    width, height = size
    x1, y1, x2, y2 = boxes.T
    turned = {1: (height - y2, x1, height - y1, x2),
              2: (width - x2, height - y2, width - x1, height - y1),
              3: (y1, width - x2, y2, width - x1)}[turns]  # fmt: skip
    return np.stack(turned, axis=1).astype(np.float32).reshape(-1, 4)


@dataclass(frozen=True)
class Placement:
    """Where :class:`Augment` put an image: turned clockwise by ``turns`` quarter turns (the
    source of ``source_size``, width and height, before the turn), scaled by ``scale`` (x, y: the
    resized image's size over the turned one's), its origin at ``offset`` on a ``canvas`` (width,
    height), then mirrored if ``flipped``."""

    scale: tuple[float, float]
    offset: tuple[int, int]
    canvas: tuple[int, int]
    min_visible: float
    flipped: bool = False
    turns: int = 0
    source_size: tuple[int, int] = (0, 0)

    def __call__(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``boxes`` (xyxy in the source image's pixels) moved with the image and clipped to the
        canvas, those less than ``min_visible`` visible or under ``MIN_BOX_SIDE`` px dropped; and
        the keep mask."""
        (off_x, off_y), (scale_x, scale_y), (width, height) = self.offset, self.scale, self.canvas
        if self.turns:
            boxes = turn_boxes(boxes, self.turns, self.source_size)
        moved = boxes * np.float32([scale_x, scale_y] * 2) + np.float32([off_x, off_y] * 2)
        clipped = moved.clip(0, np.float32([width, height, width, height]))
        area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
        visible = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        keep = visible >= self.min_visible * np.maximum(area, 1e-6)
        sides = clipped[:, 2:] - clipped[:, :2]
        keep &= (sides >= MIN_BOX_SIDE).all(axis=1)
        kept = clipped[keep]
        if self.flipped:
            kept = np.stack([width - kept[:, 2], kept[:, 1], width - kept[:, 0], kept[:, 3]], 1)
        return kept.astype(np.float32), keep


@dataclass(frozen=True)
class Augment:
    """Training augmentation aimed at surveillance footage, on RGB HWC uint8 images.

    * random scale and placement on a ``size`` square: mostly zoom-out (objects far from the
      camera, as on CCTV: the data set's pistols are mostly large), sometimes zoom-in (crop);
    * horizontal flip; HSV jitter; occasional grey (night / IR cameras), blur (motion, focus)
      and JPEG artefacts (low-bitrate streams);
    * with ``rotate``, that share of images turned by 90, 180 or 270 degrees first (guns held
      sideways, pointing down, upside down: the data set's are mostly upright).
    Boxes are moved with the image; a box less than ``min_visible`` visible or under 3 px goes.
    """

    size: int = 416
    scale: tuple[float, float] = (0.25, 1.3)
    flip: float = 0.5
    rotate: float = 0.0
    hsv: tuple[float, float, float] = (0.015, 0.6, 0.4)
    grey: float = 0.05
    blur: float = 0.2
    jpeg: float = 0.3
    min_visible: float = 0.4
    seed: int | None = None

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, classes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image, placement = self.apply(image)
        boxes, keep = placement(boxes)
        return image, boxes, classes[keep]

    def apply(self, image: np.ndarray) -> tuple[np.ndarray, Placement]:
        """The augmented image, and the :class:`Placement` that moves any boxes on it (the
        ground truth, region proposals) the way the image moved."""
        rng = random.Random(self.seed) if self.seed is not None else random
        image, placement = self.geometric(image, rng)
        return self.photometric(image, rng), placement

    def geometric(
        self,
        image: np.ndarray,
        rng: random.Random | ModuleType = random,
        *,
        canvas: tuple[int, int] | None = None,
        zoom: float | None = None,
    ) -> tuple[np.ndarray, Placement]:
        """The geometric part: maybe a quarter turn, random scale and placement on a ``canvas``
        (width, height; default the ``size`` square), then maybe a flip. ``zoom`` fixes the scale
        (relative to fitting the image in the canvas) in place of a draw from ``scale``."""
        turns = self.turns(rng)
        source_size = (image.shape[1], image.shape[0])
        if turns:
            image = turn_image(image, turns)
        image, placement = self._place(image, rng, canvas or (self.size, self.size), zoom)
        placement = replace(placement, turns=turns, source_size=source_size)
        if rng.random() < self.flip:
            image = image[:, ::-1]
            placement = replace(placement, flipped=True)
        return np.ascontiguousarray(image), placement

    def turns(self, rng: random.Random | ModuleType = random) -> int:
        """Quarter turns for the next image: 0, or 1-3 for a ``rotate`` share of them (no draw at
        all when ``rotate`` is 0, so recipes without it replay as before)."""
        if self.rotate and rng.random() < self.rotate:
            return rng.randint(1, 3)
        return 0

    def photometric(self, image: np.ndarray, rng: random.Random | ModuleType = random) -> np.ndarray:
        """The pixel-only part: colour jitter, occasional grey, blur and JPEG artefacts."""
        image = self._colour(image, rng)
        if rng.random() < self.blur:
            kernel = rng.choice((3, 5))
            image = cv2.GaussianBlur(image, (kernel, kernel), 0)
        if rng.random() < self.jpeg:
            quality = rng.randint(20, 70)
            encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
            image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
        return image

    def _place(
        self, image: np.ndarray, rng: random.Random | ModuleType, canvas: tuple[int, int], zoom: float | None
    ) -> tuple[np.ndarray, Placement]:
        height, width = image.shape[:2]
        canvas_w, canvas_h = canvas
        zoom = rng.uniform(*self.scale) if zoom is None else zoom
        scale = min(canvas_w / width, canvas_h / height) * zoom
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        resized = cv2.resize(
            image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        )
        # offset of the resized image on the canvas: anywhere it fits, or a random crop of it
        off_x = rng.randint(min(0, canvas_w - new_w), max(0, canvas_w - new_w))
        off_y = rng.randint(min(0, canvas_h - new_h), max(0, canvas_h - new_h))
        pixels = np.full((canvas_h, canvas_w, 3), 114, np.uint8)
        src_x, src_y = max(0, -off_x), max(0, -off_y)
        dst_x, dst_y = max(0, off_x), max(0, off_y)
        w = min(new_w - src_x, canvas_w - dst_x)
        h = min(new_h - src_y, canvas_h - dst_y)
        pixels[dst_y : dst_y + h, dst_x : dst_x + w] = resized[src_y : src_y + h, src_x : src_x + w]
        placement = Placement((new_w / width, new_h / height), (off_x, off_y), canvas, self.min_visible)
        return pixels, placement

    def _colour(self, image: np.ndarray, rng: random.Random | ModuleType) -> np.ndarray:
        gains = [rng.uniform(-g, g) + 1 for g in self.hsv]
        hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
        lut = np.arange(256, dtype=np.float32)
        hue = cv2.LUT(hue, ((lut * gains[0]) % 180).astype(np.uint8))
        sat = cv2.LUT(sat, np.clip(lut * gains[1], 0, 255).astype(np.uint8))
        val = cv2.LUT(val, np.clip(lut * gains[2], 0, 255).astype(np.uint8))
        image = cv2.cvtColor(cv2.merge((hue, sat, val)), cv2.COLOR_HSV2RGB)
        if rng.random() < self.grey:
            image = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        return image
