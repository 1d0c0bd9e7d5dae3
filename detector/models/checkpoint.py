"""The one-file checkpoint every detector is saved as.

A :class:`Checkpoint` holds everything needed to rebuild and run a model: architecture and
backbone names, the builder's arguments, class names, input size, normalisation, training
metadata and the weights. It is a dict of plain values and tensors, loaded with
``torch.load(..., weights_only=True)``: no pickle of arbitrary objects.
"""

from __future__ import annotations

import pickle  # only for its error type: torch.load(weights_only=True) raises it
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from detector.models.detector import Detector
from detector.models.errors import ModelLoadError
from detector.models.registry import ARCHITECTURES, get_recipe
from detector.postprocess import IMAGENET_MEAN, IMAGENET_STD

CHECKPOINT_FORMAT = "vigil-detector"
CHECKPOINT_VERSION = 1


_UNREADABLE = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile)
"""What ``torch.load`` raises for a truncated, corrupt or foreign file."""


class CheckpointError(ModelLoadError):
    """A checkpoint file that is corrupt, of another format, or does not fit its architecture."""


@dataclass
class Checkpoint:
    arch: str
    class_names: tuple[str, ...]
    input_size: int
    builder: dict[str, Any]
    """Keyword arguments of the architecture's builder (backbone name, widths, thresholds)."""
    state_dict: dict[str, torch.Tensor]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    training: dict[str, Any] = field(default_factory=dict)
    """Provenance: dataset fingerprint, epochs, image size, metrics, hardware, time."""

    @classmethod
    def from_model(
        cls,
        model: Detector,
        recipe: str,
        *,
        options: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
    ) -> Checkpoint:
        """The checkpoint of ``model``, made by ``build_model(recipe, **options)``: its weights,
        class names and input size, and what rebuilds it."""
        chosen = get_recipe(recipe)
        return cls(
            arch=chosen.arch,
            class_names=model.class_names,
            input_size=model.input_size,
            builder=chosen.builder_args(**(options or {})),
            state_dict=model.state_dict(),
            training=dict(training or {}),
        )

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.builder.get('backbone', '?')}"

    def build(self, *, pretrained: bool = False, **overrides: Any) -> Detector:
        """The model with these weights, in eval mode, on the CPU (``overrides``: e.g. thresholds)."""
        if self.arch not in ARCHITECTURES:
            raise CheckpointError(f"unknown architecture {self.arch!r}")
        kwargs = {**self.builder, **overrides}
        model = ARCHITECTURES[self.arch](
            class_names=self.class_names, input_size=self.input_size, pretrained=pretrained, **kwargs
        )
        state = {k: v.float() if v.is_floating_point() else v for k, v in self.state_dict.items()}
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise CheckpointError(f"weights do not fit {self.name}: {str(error).splitlines()[0]}") from None
        return model.eval()

    def save(self, path: str | Path, *, half: bool = True) -> Path:
        """Write the checkpoint (fp16 weights by default: half the size, no measurable mAP change)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        weights = {
            k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in self.state_dict.items()
        }
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "arch": self.arch,
            "class_names": list(self.class_names),
            "input_size": self.input_size,
            "builder": self.builder,
            "mean": list(self.mean),
            "std": list(self.std),
            "training": self.training,
            "state_dict": weights,
        }
        temporary = path.with_suffix(path.suffix + ".tmp")
        torch.save(payload, temporary)
        temporary.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Checkpoint:
        try:
            payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except _UNREADABLE as error:
            raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__})") from None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: not a Vigil detector checkpoint")
        if payload.get("version") != CHECKPOINT_VERSION:
            raise CheckpointError(
                f"{path}: checkpoint version {payload.get('version')}, expected {CHECKPOINT_VERSION}"
            )
        try:
            return cls(
                arch=payload["arch"],
                class_names=tuple(payload["class_names"]),
                input_size=int(payload["input_size"]),
                builder=dict(payload["builder"]),
                state_dict=dict(payload["state_dict"]),
                mean=tuple(payload["mean"]),
                std=tuple(payload["std"]),
                training=dict(payload.get("training", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{path}: incomplete checkpoint ({error})") from None


REGION_ARCHITECTURES = ("localizer", "sliding_window", "rcnn")
"""Architectures made of one localization model: their weights are interchangeable."""


def reuse_localizer(checkpoint: Checkpoint, recipe: str, **options: Any) -> Checkpoint:
    """The localization model inside ``checkpoint`` as the recipe ``recipe`` (another of
    :data:`REGION_ARCHITECTURES`): the same weights, looking at other regions (``options``: e.g.
    ``proposals`` or ``window_scales``). One training serves the localizer, the sliding window and
    R-CNN."""
    target = get_recipe(recipe)
    if checkpoint.arch not in REGION_ARCHITECTURES or target.arch not in REGION_ARCHITECTURES:
        raise CheckpointError(f"cannot reuse a {checkpoint.arch} checkpoint as a {target.arch} model")
    if checkpoint.builder.get("backbone") != target.backbone:
        raise CheckpointError(f"{checkpoint.name} has another backbone than {recipe} ({target.backbone})")
    weights = {k.removeprefix("localizer."): v for k, v in checkpoint.state_dict.items()}
    if target.arch != "localizer":
        weights = {f"localizer.{k}": v for k, v in weights.items()}
    return Checkpoint(
        arch=target.arch,
        class_names=checkpoint.class_names,
        input_size=checkpoint.input_size,
        builder=target.builder_args(**options),
        state_dict=weights,
        mean=checkpoint.mean,
        std=checkpoint.std,
        training={**checkpoint.training, "reused_from": checkpoint.name},
    )
