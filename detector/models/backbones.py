"""Backbones: ImageNet classification networks cut into stages that give C3, C4, C5 features.

Every backbone is a :class:`Backbone`: five stages (the stem at stride 2, or 4 for ResNet, then one stage per
stride 4, 8, 16, 32) run in turn, and the last three give the features a neck or an RPN builds on.
:func:`build_backbone` holds the recipes: which torchvision network, where to cut it, which weights, and
which stages to freeze for transfer learning on a small data set.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision import models
from torchvision.models.efficientnet import MBConv

from detector.models import lite0
from detector.models.errors import ModelLoadError

logger = logging.getLogger(__name__)

FEATURE_STRIDES = (8, 16, 32)
StateConverter = Callable[[Mapping[str, Tensor], nn.Module], Mapping[str, Tensor]]


class BackboneWeightsError(ModelLoadError):
    """A weights file that cannot be read, or whose tensors do not fit the backbone."""


class Backbone(nn.Module):
    """Stages run in turn; the last three stages' outputs are the features.

    Input: an NCHW float batch, ImageNet-normalised. Output: ``[C3, C4, C5]``, where ``Ci`` has
    ``out_channels[i]`` channels and is ``strides[i]`` times smaller than the input (rounded up).
    Frozen stages (see :meth:`freeze`) have no gradients and stay in eval mode, so their BatchNorm keeps its
    ImageNet statistics, even after ``.train()``.
    """

    def __init__(self, stages: Sequence[nn.Module], *, out_channels: tuple[int, ...]) -> None:
        super().__init__()
        if len(out_channels) != len(FEATURE_STRIDES) or len(stages) < len(FEATURE_STRIDES):
            raise ValueError(f"{len(stages)} stages and {len(out_channels)} widths for C3-C5 features")
        self.stages = nn.ModuleList(stages)
        self.out_channels = out_channels
        self.strides = FEATURE_STRIDES
        self.frozen_stages = 0

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features[-len(FEATURE_STRIDES) :]

    def freeze(self, trainable_stages: int | None) -> None:
        """Train only the last ``trainable_stages`` stages (all of them for None); freeze the rest."""
        count = len(self.stages)
        trainable = count if trainable_stages is None else trainable_stages
        if not 0 <= trainable <= count:
            raise ValueError(f"trainable_stages must be between 0 and {count}, got {trainable_stages}")
        self.frozen_stages = count - trainable
        for index, stage in enumerate(self.stages):
            stage.requires_grad_(index >= self.frozen_stages)
        self.train(self.training)

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        for stage in self.stages[: self.frozen_stages]:
            stage.eval()
        return self


@dataclass(frozen=True)
class _Recipe:
    """How to make one backbone: its classification network and where to cut it into five stages."""

    classifier: Callable[[], nn.Module]  # torchvision layout, random init (never a hub download)
    stages: Callable[[nn.Module], list[nn.Module]]
    pretrained: Callable[[], nn.Module] | None = None  # the classifier with default pretrained weights
    convert: StateConverter | None = None  # other layouts of its weights files -> the classifier's


def _pick(features: nn.Sequential, groups: Sequence[Sequence[int]]) -> list[nn.Module]:
    return [nn.Sequential(*(features[i] for i in group)) for group in groups]


def _efficientnet_stages(model: nn.Module) -> list[nn.Module]:
    # features: 0 stem, 1-7 MBConv stages (strides 2, 4, 8, 16, 16, 32, 32), 8 the 1x1 head conv (left out)
    return _pick(model.features, [(0, 1), (2,), (3,), (4, 5), (6, 7)])


def _mobilenet_v3_large_stages(model: nn.Module) -> list[nn.Module]:
    # As torchvision's detection models do, C5 includes the last 1x1 conv (960 channels).
    return _pick(model.features, [(0, 1), (2, 3), (4, 5, 6), range(7, 13), range(13, 17)])


def _resnet_stages(model: nn.Module) -> list[nn.Module]:
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    return [stem, model.layer1, model.layer2, model.layer3, model.layer4]


_EFFICIENTNET_B = {f"efficientnet_b{i}": getattr(models, f"efficientnet_b{i}") for i in range(8)}
_RECIPES: dict[str, _Recipe] = {
    **{
        name: _Recipe(partial(build, weights=None), _efficientnet_stages)
        for name, build in _EFFICIENTNET_B.items()
    },
    **{
        f"efficientnet_lite{variant}": _Recipe(
            partial(lite0.efficientnet_lite, variant),
            _efficientnet_stages,
            pretrained=partial(lite0.pretrained_efficientnet_lite, variant),
            convert=lite0.to_torchvision_layout,
        )
        for variant in lite0.LITE_VARIANTS
    },
    "resnet50": _Recipe(partial(models.resnet50, weights=None), _resnet_stages),
    "resnet101": _Recipe(partial(models.resnet101, weights=None), _resnet_stages),
    "mobilenet_v3_large": _Recipe(
        partial(models.mobilenet_v3_large, weights=None), _mobilenet_v3_large_stages
    ),
}
BACKBONES = tuple(_RECIPES)


def build_backbone(
    name: str,
    *,
    weights: str | Path | None = None,
    pretrained: bool = True,
    trainable_stages: int | None = None,
) -> Backbone:
    """A backbone by name (see ``BACKBONES``), with C3-C5 features at strides 8, 16 and 32.

    ``weights`` is a state dict file: one saved from a :class:`Backbone` of the same name, a torchvision
    classification checkpoint of the same architecture, or (for Lite0-2) the reference model's. Without it,
    ``pretrained`` loads the ImageNet weights that ship with a package, which only EfficientNet-Lite0-2 have;
    the others (and ``pretrained=False``) start from random init, as torchvision's would need a download.
    ``trainable_stages`` trains only the last N of the five stages (stem, strides 4, 8, 16, 32); None
    trains all. Raises :class:`BackboneWeightsError` for a file that does not fit.
    """
    recipe = _recipe(name)
    if weights is not None:
        backbone = _backbone_with_weights(name, recipe, weights)
    elif pretrained and recipe.pretrained is not None:
        backbone = _backbone_from(recipe.pretrained(), recipe)
    else:
        if pretrained:
            logger.info("backbone %s has no bundled ImageNet weights: random init", name)
        backbone = _backbone_from(recipe.classifier(), recipe)
    backbone.freeze(trainable_stages)
    return backbone


def _backbone_with_weights(name: str, recipe: _Recipe, path: str | Path) -> Backbone:
    """The file's tensors loaded into the backbone, or into the classifier before it is cut."""
    state = _read_state_dict(path)
    classifier = recipe.classifier()
    if _is_backbone_layout(state):
        backbone = _backbone_from(classifier, recipe)
        _load(backbone, state, source=path, what=f"{name} backbone")
        return backbone
    if recipe.convert is not None:
        try:
            state = recipe.convert(state, classifier)
        except ValueError as exc:
            raise BackboneWeightsError(f"{path} does not fit {name}: {exc}") from exc
    _load(classifier, state, source=path, what=f"{name} classifier")
    return _backbone_from(classifier, recipe)


def build_classifier(name: str) -> nn.Module:
    """The 1000-class ImageNet network (torchvision layout, random init) that backbone ``name`` is cut
    from."""
    return _recipe(name).classifier()


def _recipe(name: str) -> _Recipe:
    if name not in _RECIPES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    return _RECIPES[name]


def _backbone_from(classifier: nn.Module, recipe: _Recipe) -> Backbone:
    stages = recipe.stages(classifier)
    widths = tuple(_output_width(stage) for stage in stages[-len(FEATURE_STRIDES) :])
    return Backbone(stages, out_channels=widths)


def _output_width(stage: nn.Module) -> int:
    """The width of a stage's output: that of its last BatchNorm, in these architectures."""
    norms = [m for m in stage.modules() if isinstance(m, nn.BatchNorm2d)]
    return norms[-1].num_features


def _is_backbone_layout(state: Mapping[str, Tensor]) -> bool:
    return next(iter(state), "").startswith("stages.")


def _read_state_dict(path: str | Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (OSError, RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise BackboneWeightsError(f"{path} is not a readable PyTorch weights file: {exc}") from exc
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise BackboneWeightsError(f"{path} does not hold a state dict (names to tensors)")
    if not state:
        raise BackboneWeightsError(f"{path} holds an empty state dict")
    return dict(state)


def _load(model: nn.Module, state: Mapping[str, Tensor], *, source: str | Path, what: str) -> None:
    """``load_state_dict`` that first says, in one short message, how the file and the model disagree."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    resized = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = [
        f"{len(found)} {kind} (first: {found[0]})"
        for kind, found in (("missing", missing), ("unexpected", unexpected), ("of another shape", resized))
        if found
    ]
    if problems:
        raise BackboneWeightsError(f"{source} does not fit {what}: " + "; ".join(problems))
    model.load_state_dict(state)


# -- compound scaling ------------------------------------------------------------------------------------

# (width, depth, native resolution): the EfficientNet paper's compound scaling with phi = 0..7.
EFFICIENTNET_SCALING: dict[str, tuple[float, float, int]] = {
    "efficientnet_b0": (1.0, 1.0, 224),
    "efficientnet_b1": (1.0, 1.1, 240),
    "efficientnet_b2": (1.1, 1.2, 260),
    "efficientnet_b3": (1.2, 1.4, 300),
    "efficientnet_b4": (1.4, 1.8, 380),
    "efficientnet_b5": (1.6, 2.2, 456),
    "efficientnet_b6": (1.8, 2.6, 528),
    "efficientnet_b7": (2.0, 3.1, 600),
    "efficientnet_lite0": (1.0, 1.0, lite0.LITE0_RESOLUTION),
}


def compound_scaling_table() -> list[dict]:
    """Width/depth coefficients, resolution, size and cost of each EfficientNet, built on the meta device.

    Each row: ``name``, ``width``, ``depth``, ``resolution``, ``params`` (the 1000-class network),
    ``backbone_params`` (stem to C5, without the head conv and classifier), ``blocks`` (MBConv blocks, 16
    for B0, growing with depth), ``out_channels`` (C3-C5, growing with width) and ``gmacs``:
    billions of multiply-adds for one image at the native resolution (convolutions and the linear layer, as
    counted by ``FlopCounterMode`` and halved). That is the convention of torchvision's "GFLOPS" column,
    0.39 for B0. No weights are allocated: the whole table, B7 at 600 px included, takes about 3 s.
    """
    rows = []
    for name, (width, depth, resolution) in EFFICIENTNET_SCALING.items():
        recipe = _recipe(name)
        with torch.device("meta"):
            classifier = recipe.classifier().eval()
        backbone = _backbone_from(classifier, recipe)
        rows.append(
            {
                "name": name,
                "width": width,
                "depth": depth,
                "resolution": resolution,
                "params": count_params(classifier),
                "backbone_params": count_params(backbone),
                "blocks": sum(isinstance(m, MBConv) for m in classifier.modules()),
                "out_channels": backbone.out_channels,
                "gmacs": count_gmacs(classifier, resolution),
            }
        )
    return rows


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gmacs(model: nn.Module, resolution: int) -> float:
    """Billions of multiply-adds for one RGB ``resolution``² image through ``model``: the flops that
    ``FlopCounterMode`` counts (convolutions, matrix products), halved. On the meta device nothing is
    computed, so build the model there (``with torch.device("meta")``) to count a large one for free."""
    image = torch.empty(1, 3, resolution, resolution, device=next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(image)
    return counter.get_total_flops() / 2 / 1e9
