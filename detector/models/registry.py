"""Model names → builders, and the one-file checkpoint every detector is saved as.

A :class:`Checkpoint` holds everything needed to rebuild and run a model: architecture and
backbone names, the builder's arguments, class names, input size, normalisation, training
metadata and the weights. It is a dict of plain values and tensors, loaded with
``torch.load(..., weights_only=True)``: no pickle of arbitrary objects.
"""

from __future__ import annotations

import hashlib
import pickle  # only for its error type: torch.load(weights_only=True) raises it
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from detector.models.backbones import build_backbone
from detector.models.faster_rcnn import build_faster_rcnn
from detector.models.heads import DenseHead
from detector.models.necks import PANFPN
from detector.models.transform import IMAGENET_MEAN, IMAGENET_STD, LetterboxTransform
from detector.models.yolo import YOLO, DecodeConfig

CHECKPOINT_FORMAT = "vigil-detector"
CHECKPOINT_VERSION = 1


_UNREADABLE = (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile)
"""What ``torch.load`` raises for a truncated, corrupt or foreign file."""


class CheckpointError(ValueError):
    """A checkpoint file that is corrupt, of another format, or does not fit its architecture."""


def build_yolo(
    *,
    backbone: str,
    num_classes: int,
    input_size: int,
    neck_width: int = 96,
    head_depth: int = 2,
    pretrained: bool = True,
    trainable_stages: int | None = None,
    score_thresh: float = 0.05,
    nms_iou_thresh: float = 0.6,
) -> YOLO:
    """EfficientNet- (or other) backed YOLO: backbone C3–C5 → PAN-FPN → dense anchor-free head."""
    features = build_backbone(backbone, trainable_stages=trainable_stages, pretrained=pretrained)
    neck = PANFPN(features.out_channels, neck_width)
    head = DenseHead(neck_width, num_classes, features.strides, depth=head_depth)
    decode = DecodeConfig(score_thresh=score_thresh, nms_iou_thresh=nms_iou_thresh)
    return YOLO(features, neck, head, LetterboxTransform(input_size), decode=decode)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"yolo": build_yolo, "faster_rcnn": build_faster_rcnn}

MODELS: dict[str, dict[str, Any]] = {
    "yolo_lite0": {"arch": "yolo", "backbone": "efficientnet_lite0"},
    **{f"yolo_b{i}": {"arch": "yolo", "backbone": f"efficientnet_b{i}"} for i in range(8)},
    "yolo_mobilenet_v3": {"arch": "yolo", "backbone": "mobilenet_v3_large"},
    "yolo_resnet50": {"arch": "yolo", "backbone": "resnet50"},
    "frcnn_lite0": {"arch": "faster_rcnn", "backbone": "efficientnet_lite0"},
    "frcnn_mobilenet_v3": {"arch": "faster_rcnn", "backbone": "mobilenet_v3_large"},
    "frcnn_resnet50": {"arch": "faster_rcnn", "backbone": "resnet50"},
}
"""Named recipes for ``vigil train --model``."""


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

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.builder.get('backbone', '?')}"

    def build(self, *, pretrained: bool = False, **overrides: Any) -> nn.Module:
        """The model with these weights, in eval mode, on the CPU (``overrides``: e.g. thresholds)."""
        if self.arch not in ARCHITECTURES:
            raise CheckpointError(f"unknown architecture {self.arch!r}")
        kwargs = {**self.builder, **overrides}
        model = ARCHITECTURES[self.arch](
            num_classes=len(self.class_names), input_size=self.input_size, pretrained=pretrained, **kwargs
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


def build_model(
    name: str,
    *,
    num_classes: int,
    input_size: int,
    pretrained: bool = True,
    trainable_stages: int | None = None,
    **options: Any,
) -> tuple[nn.Module, str, dict[str, Any]]:
    """A fresh model from a recipe name: (model, architecture, builder kwargs for its checkpoint).

    ``options`` go to the architecture's builder (e.g. ``anchor_sizes`` for Faster R-CNN)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    recipe = {**MODELS[name], **options}
    arch = recipe.pop("arch")
    model = ARCHITECTURES[arch](
        num_classes=num_classes,
        input_size=input_size,
        pretrained=pretrained,
        trainable_stages=trainable_stages,
        **recipe,
    )
    return model, arch, recipe


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
