"""Training: YOLO-format data → a Vigil checkpoint, with EMA weights, warm-up + cosine LR,
frozen early backbone stages (transfer learning), AMP on GPU, resume, per-epoch validation,
a metrics file and loss / mAP curves. For YOLO, optionally the small-object recipe: composite
images (:mod:`detector.training.composite`: mosaic, copy-paste, CCTV zoom-out, hard negatives)
and multi-scale batches.

Resuming is exact: every random draw of an epoch (shuffle, augmentation in the loader's workers,
multi-scale sides, stochastic depth) comes from generators seeded from ``(seed, epoch)`` when the
epoch starts, and the learning rate is a function of the step, so ``state.pt`` (model, EMA,
optimizer, scaler, epoch, history) is all a resumed run needs to repeat the uninterrupted one.

Outputs in ``out_dir``: ``state.pt`` (everything needed to resume, rewritten every epoch),
``last.pt`` and ``best.pt`` (deployable checkpoints of the EMA weights; best by val mAP@0.5:0.95),
``metrics.jsonl`` (one line per epoch) and ``curves.png``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import platform
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from detector.device import pick_device
from detector.models.checkpoint import REGION_ARCHITECTURES, Checkpoint
from detector.models.faster_rcnn import anchor_sizes_for
from detector.models.registry import build_model, get_recipe
from detector.training.composite import CompositeConfig, CompositeDataset
from detector.training.crops import (
    CROP_SOURCE_SIDE,
    CropDataset,
    CropSampler,
    negative_frames,
)
from detector.training.datasets import Augment, DataSpec, YoloDataset, build_cache, collate
from detector.training.evaluate import EvalReport, evaluate
from detector.training.proposals import ProposalDataset, build_proposal_cache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    data: str
    model: str = "yolo_lite0"
    input_size: int = 416
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    trainable_stages: int | None = 3
    """Backbone stages to train (of 5: stem, strides 4, 8, 16, 32); the rest stay ImageNet's."""
    ema_decay: float = 0.9995
    workers: int = 2
    out_dir: str = "runs/train"
    cache_dir: str = "runs/cache"
    device: str = "auto"
    seed: int = 0
    eval_score_thresh: float = 0.4
    """Operating threshold for the precision / recall figures."""
    max_train_batches: int | None = None
    """Stop each epoch after this many batches (smoke runs)."""
    pretrained: bool = True
    """Start the backbone from its bundled ImageNet weights (False: random init)."""
    crops_per_image: int = 4
    """Crop classifiers: crops drawn from each training image per epoch."""
    negatives: str | None = None
    """A video of scenes without the classes: background crops for the crop classifiers, hard
    negative canvases for YOLO's composite images."""
    negatives_until: int | None = None
    """Use only the frames before this index of ``negatives`` (the rest is kept for testing)."""
    composite: CompositeConfig | None = None
    """YOLO: compose training images (mosaic, copy-paste, zoom-out, negatives); None: one
    augmented image per sample."""
    multi_scale: tuple[float, float] | None = None
    """Train each batch at a random side in this range times ``input_size`` (multiples of 32)."""
    close_mosaic: int = 0
    """With ``composite``: the last this many epochs without mosaic, copy-paste and zoom-out
    (images as the val and test ones look; the hard negatives stay)."""
    rotate: float = 0.0
    """Share of training images (and pasted objects) turned by 90, 180 or 270 degrees."""
    finetune: str | None = None
    """Start from this trained checkpoint's weights (same recipe and classes) instead of ImageNet's:
    a new run from epoch 0 with its own schedule (``--init`` continues an interrupted one)."""


def training_set(arch: str, train_dir: Path, model: nn.Module, cfg: TrainConfig) -> Dataset:
    """The training samples an architecture learns from: whole augmented images for the
    detectors, crops for the crop classifiers (localizer, sliding window, R-CNN), and for Fast
    R-CNN the images with their selective-search proposals (cached once, the model's settings)."""
    augment = Augment(size=cfg.input_size, rotate=cfg.rotate)
    if arch in REGION_ARCHITECTURES:
        return CropDataset(
            YoloDataset(train_dir),
            CropSampler(),
            crops_per_image=cfg.crops_per_image,
            negative_frames=negative_frames(cfg.negatives, cfg.negatives_until, Path(cfg.cache_dir)),
        )
    if arch == "fast_rcnn":
        proposals = build_proposal_cache(
            train_dir, model.proposer, Path(cfg.cache_dir), workers=max(1, cfg.workers)
        )
        return ProposalDataset(train_dir, proposals, augment=augment)
    if cfg.composite is not None:
        return CompositeDataset(
            YoloDataset(train_dir),
            augment,
            cfg.composite,
            negative_frames=negative_frames(cfg.negatives, cfg.negatives_until, Path(cfg.cache_dir)),
        )
    return YoloDataset(train_dir, augment=augment)


def load_trained_weights(model: nn.Module, checkpoint: str | Path) -> Checkpoint:
    """``model``'s weights set from a trained ``checkpoint`` of the same recipe and classes (fp16
    ones made fp32); the checkpoint. Raises ValueError when it does not fit."""
    saved = Checkpoint.load(checkpoint)
    if tuple(saved.class_names) != tuple(model.class_names):
        raise ValueError(f"{checkpoint}: classes {saved.class_names}, not the data's {model.class_names}")
    weights = {k: v.float() if v.is_floating_point() else v for k, v in saved.state_dict.items()}
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        raise ValueError(f"{checkpoint} is not a checkpoint of this model recipe: {error}") from None
    return saved


def multi_scale_sides(input_size: int, multi_scale: tuple[float, float] | None) -> list[int]:
    """The training sides: multiples of 32 within ``multi_scale`` times ``input_size``
    (``[input_size]`` alone without a range)."""
    if multi_scale is None:
        return [input_size]
    low, high = math.ceil(multi_scale[0] * input_size / 32), math.floor(multi_scale[1] * input_size / 32)
    if low > high:
        raise ValueError(f"no multiple of 32 between {multi_scale[0]} and {multi_scale[1]} × {input_size}")
    return [32 * k for k in range(low, high + 1)]


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of every generator in epoch ``epoch`` (0-based) of a run seeded ``seed``."""
    return seed * 1_000_003 + epoch


class ModelEMA:
    """Exponential moving average of the weights (decay ramps up over the first updates)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = self.decay * (1 - math.exp(-self.updates / 2000))
        live = model.state_dict()
        for name, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(decay).add_(live[name].detach(), alpha=1 - decay)
            else:
                value.copy_(live[name])


def lr_factor(step: int, *, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up from 10 % over ``warmup_epochs``, then cosine down to 5 %."""
    warmup = max(1, int(cfg.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return 0.1 + 0.9 * step / warmup
    progress = (step - warmup) / max(1, cfg.epochs * steps_per_epoch - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.spec = DataSpec.load(cfg.data)
        arch = get_recipe(cfg.model).arch
        if cfg.multi_scale is not None and arch != "yolo":
            raise ValueError(f"multi-scale training is for YOLO (its letterbox size), not {arch}")
        if cfg.rotate and arch in REGION_ARCHITECTURES:
            raise ValueError(f"--rotate turns whole training images: not for the crop classifier {arch}")
        cache_side = round(cfg.input_size * 1.5)
        if arch in REGION_ARCHITECTURES:
            cache_side = max(cache_side, CROP_SOURCE_SIDE)
        train_dir = build_cache(self.spec, "train", max_side=cache_side, cache_root=Path(cfg.cache_dir))
        val_dir = build_cache(self.spec, "val", max_side=cache_side, cache_root=Path(cfg.cache_dir))
        self.val_set = YoloDataset(val_dir)
        self.options: dict[str, Any] = {}
        """Builder options beyond the recipe's, saved in every checkpoint."""
        if arch == "faster_rcnn":
            self.options["anchor_sizes"] = anchor_sizes_for(YoloDataset(train_dir).boxes_at(cfg.input_size))
        self.model = build_model(
            cfg.model,
            class_names=self.spec.names,
            input_size=cfg.input_size,
            trainable_stages=cfg.trainable_stages,
            pretrained=cfg.pretrained,
            **self.options,
        )
        if cfg.finetune:
            load_trained_weights(self.model, cfg.finetune)
            log.info("fine-tuning from %s", cfg.finetune)
        self.train_set = training_set(arch, train_dir, self.model, cfg)
        self.model.to(self.device).to(memory_format=torch.channels_last)  # faster on CPU and GPU
        self.ema = ModelEMA(self.model, cfg.ema_decay)
        decay, no_decay = [], []
        for name, parameter in self.model.named_parameters():
            if parameter.requires_grad:
                (no_decay if parameter.ndim <= 1 or name.endswith(".bias") else decay).append(parameter)
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.device.type == "cuda")
        self.epoch = 0
        self.best_map = -1.0
        self.history: list[dict[str, float]] = []
        self.train_seconds = 0.0
        self.sides = multi_scale_sides(cfg.input_size, cfg.multi_scale)
        self.loader = DataLoader(
            self.train_set,
            batch_size=cfg.batch_size,
            shuffle=True,
            num_workers=cfg.workers,
            collate_fn=collate,
            drop_last=len(self.train_set) > cfg.batch_size,
            generator=torch.Generator(),
            persistent_workers=False,  # workers restart each epoch, seeded from the epoch's seed
            pin_memory=self.device.type == "cuda",
        )

    # -- resume ------------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.out / "state.pt"

    def resume(self) -> bool:
        if not self.state_path.exists():
            return False
        state = torch.load(self.state_path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.model.load_state_dict(state["ema"])
        self.ema.updates = int(state["ema_updates"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.best_map = float(state["best_map"])
        self.history = list(state["history"])
        self.train_seconds = float(state["train_seconds"])
        log.info("resumed from %s at epoch %d", self.state_path, self.epoch)
        return True

    def warm_start(self, checkpoint: str | Path) -> None:
        """Continue a run from a deployable checkpoint when its ``state.pt`` is gone (another
        machine or session): model and EMA weights, epoch count, best mAP and training time
        from the checkpoint, history from ``out_dir/metrics.jsonl`` when present. The optimizer's
        moments start afresh (they re-form within the warm-up)."""
        saved = load_trained_weights(self.model, checkpoint)
        self.ema.model.load_state_dict(self.model.state_dict())
        self.epoch = int(saved.training["epochs"])
        self.ema.updates = self.epoch * len(self.loader)
        self.best_map = float(saved.training.get("val", {}).get("map50_95", -1.0))
        self.train_seconds = float(saved.training.get("train_seconds", 0.0))
        metrics = self.out / "metrics.jsonl"
        if metrics.exists():
            self.history = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
            self.history = [row for row in self.history if row["epoch"] <= self.epoch]
        log.info("warm start from %s at epoch %d", checkpoint, self.epoch)

    def _save_state(self) -> None:
        state = {
            "model": self.model.state_dict(),
            "ema": self.ema.model.state_dict(),
            "ema_updates": self.ema.updates,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "best_map": self.best_map,
            "history": self.history,
            "train_seconds": self.train_seconds,
            "config": asdict(self.cfg),
        }
        temporary = self.state_path.with_suffix(".tmp")
        torch.save(state, temporary)
        temporary.replace(self.state_path)

    # -- the loop ----------------------------------------------------------------------------

    def fit(self, *, until_epoch: int | None = None) -> Path:
        """Train up to epoch ``until_epoch`` (default: ``epochs``); the best checkpoint's path."""
        while self.epoch < min(self.cfg.epochs, until_epoch or self.cfg.epochs):
            started = time.monotonic()
            losses = self.train_epoch()
            self.train_seconds += time.monotonic() - started
            report = self.validate()
            self.epoch += 1
            row = {
                "epoch": self.epoch,
                **losses,
                "val_map50": report.map50,
                "val_map50_95": report.map50_95,
                "val_precision": report.precision,
                "val_recall": report.recall,
                "lr": self.optimizer.param_groups[0]["lr"],
                "train_seconds": self.train_seconds,
            }
            self.history.append(row)
            with (self.out / "metrics.jsonl").open("a") as metrics:
                metrics.write(json.dumps(row) + "\n")
            self._checkpoint(report, "last.pt")
            if report.map50_95 > self.best_map:
                self.best_map = report.map50_95
                self._checkpoint(report, "best.pt")
            self._save_state()
            plot_curves(self.history, self.out / "curves.png", loss_names=self.model.loss_names)
            log.info("epoch %d/%d: %s", self.epoch, self.cfg.epochs, row)
        return self.out / "best.pt"

    def _seed_epoch(self) -> random.Random:
        """Seed every generator the epoch draws from; the generator of the multi-scale sides."""
        seed = epoch_seed(self.cfg.seed, self.epoch)
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        self.loader.generator.manual_seed(seed)
        return random.Random(seed)

    def _set_composition(self) -> None:
        """The composite recipe of this epoch: plain images for the last ``close_mosaic`` ones."""
        if isinstance(self.train_set, CompositeDataset) and self.cfg.composite is not None:
            closing = self.epoch >= self.cfg.epochs - self.cfg.close_mosaic
            plain = replace(self.cfg.composite, mosaic=0.0, copy_paste=0.0, zoom_out=0.0)
            self.train_set.config = plain if closing else self.cfg.composite

    def train_epoch(self) -> dict[str, float]:
        self.model.train()
        sides = self._seed_epoch()
        self._set_composition()
        steps_per_epoch = len(self.loader)
        totals: dict[str, float] = {}
        batches = 0
        progress = tqdm(
            self.loader, desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}", leave=False, mininterval=5
        )
        for batch_index, (images, targets) in enumerate(progress):
            if self.cfg.max_train_batches is not None and batch_index >= self.cfg.max_train_batches:
                break
            step = self.epoch * steps_per_epoch + batch_index
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.lr * lr_factor(step, steps_per_epoch=steps_per_epoch, cfg=self.cfg)
            images = [image.to(self.device, non_blocking=True) for image in images]
            targets = [{k: v.to(self.device) for k, v in t.items()} for t in targets]
            if len(self.sides) > 1:
                self.model.transform.size = sides.choice(self.sides)
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"):
                losses = self.model(images, targets)
            loss = sum(losses.values())
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.ema.update(self.model)
            batches += 1
            for name, value in {"loss": loss, **losses}.items():
                totals[name] = totals.get(name, 0.0) + float(value.detach())
            progress.set_postfix(loss=f"{totals['loss'] / batches:.3f}")
        if len(self.sides) > 1:
            self.model.transform.size = self.cfg.input_size
        return {f"train_{name}": value / max(1, batches) for name, value in totals.items()}

    def validate(self) -> EvalReport:
        model = self.ema.model
        model.score_thresh = 0.001  # the whole PR curve, for a fair mAP
        return evaluate(
            model, self.val_set, self.spec.names, score_thresh=self.cfg.eval_score_thresh, device=self.device
        )

    def _checkpoint(self, report: EvalReport, filename: str) -> None:
        Checkpoint.from_model(
            self.ema.model,
            self.cfg.model,
            options=self.options,
            training={
                "dataset": str(self.spec.splits["train"]),
                "dataset_fingerprint": self.spec.fingerprint("train"),
                "epochs": self.epoch,
                "config": asdict(self.cfg),
                "val": report.summary(),
                "train_seconds": round(self.train_seconds),
                "hardware": hardware(self.device),
            },
        ).save(self.out / filename)


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU threads"


def plot_curves(history: list[dict[str, float]], path: Path, *, loss_names: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (losses, maps) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("train_loss", *(f"train_{name}" for name in loss_names)):
        if key in history[0]:
            losses.plot(epochs, [row[key] for row in history], label=key.removeprefix("train_"))
    losses.set(xlabel="epoch", ylabel="loss", title="training loss")
    losses.legend()
    maps.plot(epochs, [row["val_map50"] for row in history], label="val mAP@0.5")
    maps.plot(epochs, [row["val_map50_95"] for row in history], label="val mAP@0.5:0.95")
    maps.set(xlabel="epoch", ylabel="mAP", ylim=(0, 1), title="validation")
    maps.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
