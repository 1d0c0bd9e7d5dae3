import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import mobilenet_v3_large

from detector.models import lite0
from detector.models.backbones import (
    BACKBONES,
    EFFICIENTNET_SCALING,
    BackboneWeightsError,
    build_backbone,
    compound_scaling_table,
)

B0_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # MBConv blocks per stage, EfficientNet-B0


def fixed_images(count: int, size: int) -> torch.Tensor:
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(0))


def round_width(channels: float) -> int:
    """The paper's rounding of a scaled width: to the nearest multiple of 8, losing at most 10%."""
    rounded = max(8, int(channels + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * channels else rounded


def norms(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


# -- EfficientNet-Lite0 ------------------------------------------------------------------------------


def test_lite0_logits_equal_the_reference_model() -> None:
    from efficientnet_lite_pytorch import EfficientNet  # dev extra: the package's reference model

    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(lite0.package_weights_path(), map_location="cpu", weights_only=True))
    ours = lite0.pretrained_efficientnet_lite0()
    images = fixed_images(2, 224)
    with torch.no_grad():
        expected, got = reference.eval()(images), ours.eval()(images)
    assert torch.equal(got, expected), f"max abs diff {(got - expected).abs().max().item():.3g}"


def test_lite0_logits_match_recorded_values() -> None:
    """The same check without the reference package: logits it gave for this input."""
    with torch.no_grad():
        logits = lite0.pretrained_efficientnet_lite0().eval()(fixed_images(2, 224))
    expected = torch.tensor(
        [[-2.425938, 0.486051, 1.693045, 0.168755], [-2.550623, 0.496407, 1.414016, -0.106151]]
    )
    torch.testing.assert_close(logits[:, :4], expected, atol=1e-4, rtol=0)
    assert logits.argmax(1).tolist() == [21, 21]


def test_stride_two_convolutions_pad_like_tensorflow() -> None:
    conv = lite0.Conv2dSame(1, 1, 3, stride=2, bias=False)
    nn.init.ones_(conv.weight)
    image = torch.arange(16.0).reshape(1, 1, 4, 4)
    # Even input: no padding top/left, one row/column bottom/right, so the first window is image[0:3, 0:3].
    assert conv(image)[0, 0, 0, 0] == image[0, 0, :3, :3].sum()
    assert conv(torch.ones(1, 1, 5, 5)).shape[-2:] == (3, 3)


def test_lite0_backbone_is_pretrained_with_documented_features() -> None:
    backbone = build_backbone("efficientnet_lite0").eval()
    package = torch.load(lite0.package_weights_path(), map_location="cpu", weights_only=True)
    assert torch.equal(backbone.stages[0][0][0].weight, package["_conv_stem.weight"])
    assert backbone.out_channels == (40, 112, 320)
    assert backbone.strides == (8, 16, 32)
    for size in (224, 225):
        with torch.no_grad():
            features = backbone(fixed_images(1, size))
        assert len(features) == 3
        for feature, channels, stride in zip(features, (40, 112, 320), (8, 16, 32), strict=True):
            assert tuple(feature.shape) == (1, channels, math.ceil(size / stride), math.ceil(size / stride))


# -- every backbone ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BACKBONES)
def test_forward_backward_with_frozen_early_stages(name: str) -> None:
    torch.manual_seed(0)
    backbone = build_backbone(name, trainable_stages=2)
    frozen, trainable = backbone.stages[:3], backbone.stages[3:]
    stats_before = [bn.running_mean.clone() for stage in frozen for bn in norms(stage)]

    backbone.train()
    features = backbone(fixed_images(1, 128))
    sum(f.square().mean() for f in features).backward()

    assert len(features) == len(backbone.out_channels) == len(backbone.strides) == 3
    for feature, channels, stride in zip(features, backbone.out_channels, backbone.strides, strict=True):
        assert tuple(feature.shape) == (1, channels, 128 // stride, 128 // stride)
    for stage in frozen:
        assert all(not p.requires_grad and p.grad is None for p in stage.parameters())
        assert not any(bn.training for bn in norms(stage))
    for stage in trainable:
        grads = [p.grad for p in stage.parameters()]
        assert all(g is not None for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
        assert all(bn.training for bn in norms(stage))
    stats_after = [bn.running_mean for stage in frozen for bn in norms(stage)]
    assert all(torch.equal(a, b) for a, b in zip(stats_before, stats_after, strict=True))


def test_every_stage_trains_by_default() -> None:
    backbone = build_backbone("mobilenet_v3_large").train()
    sum(f.mean() for f in backbone(fixed_images(2, 64))).backward()
    assert all(p.grad is not None for p in backbone.parameters())
    assert all(bn.training for bn in norms(backbone))


def test_frozen_stages_stay_in_eval_after_train_eval_train() -> None:
    backbone = build_backbone("resnet50", trainable_stages=0)
    backbone.eval().train()
    assert not any(m.training for stage in backbone.stages for m in stage.modules())
    assert not any(p.requires_grad for p in backbone.parameters())


@pytest.mark.parametrize("trainable_stages", [-1, 6])
def test_trainable_stages_out_of_range(trainable_stages: int) -> None:
    with pytest.raises(ValueError, match="between 0 and 5"):
        build_backbone("efficientnet_b0", trainable_stages=trainable_stages)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        build_backbone("efficientnet_b9")


# -- weights files -----------------------------------------------------------------------------------


def same_state(a: nn.Module, b: nn.Module) -> bool:
    state_b = b.state_dict()
    return all(torch.equal(v, state_b[k]) for k, v in a.state_dict().items())


def test_backbone_weights_round_trip(tmp_path: Path) -> None:
    saved = build_backbone("efficientnet_b0").eval()
    torch.save(saved.state_dict(), tmp_path / "b0.pt")
    loaded = build_backbone("efficientnet_b0", weights=tmp_path / "b0.pt", trainable_stages=3).eval()
    assert same_state(saved, loaded)
    images = fixed_images(1, 64)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(saved(images), loaded(images), strict=True))


def test_torchvision_classifier_checkpoint_loads(tmp_path: Path) -> None:
    classifier = mobilenet_v3_large(weights=None)
    torch.save(classifier.state_dict(), tmp_path / "mobilenet.pth")
    backbone = build_backbone("mobilenet_v3_large", weights=tmp_path / "mobilenet.pth")
    assert torch.equal(backbone.stages[0][0][0].weight, classifier.features[0][0].weight)
    assert torch.equal(backbone.stages[-1][-1][0].weight, classifier.features[16][0].weight)


def test_lite0_reference_layout_file_loads() -> None:
    from_file = build_backbone("efficientnet_lite0", weights=lite0.package_weights_path())
    assert same_state(from_file, build_backbone("efficientnet_lite0"))
    assert not same_state(from_file, build_backbone("efficientnet_lite0", pretrained=False))


def test_mismatched_weights_say_what_does_not_fit(tmp_path: Path) -> None:
    torch.save(build_backbone("efficientnet_b0").state_dict(), tmp_path / "b0.pt")
    with pytest.raises(BackboneWeightsError, match=r"does not fit efficientnet_b1 backbone: \d+ missing"):
        build_backbone("efficientnet_b1", weights=tmp_path / "b0.pt")
    with pytest.raises(
        BackboneWeightsError, match=r"does not fit efficientnet_lite0 backbone: .* unexpected"
    ):
        build_backbone("efficientnet_lite0", weights=tmp_path / "b0.pt")
    torch.save({"fc.weight": torch.zeros(3, 4)}, tmp_path / "other.pt")
    with pytest.raises(BackboneWeightsError, match=r"does not fit resnet50 classifier: .* of another shape"):
        build_backbone("resnet50", weights=tmp_path / "other.pt")


def test_unreadable_weights_files(tmp_path: Path) -> None:
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint at all")
    torch.save(build_backbone("mobilenet_v3_large").state_dict(), tmp_path / "good.pt")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "good.pt").read_bytes()[:5000])
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")
    for name in ("garbage.pt", "truncated.pt", "module.pt"):
        with pytest.raises(BackboneWeightsError, match="not a readable PyTorch weights file"):
            build_backbone("mobilenet_v3_large", weights=tmp_path / name)
    with pytest.raises(BackboneWeightsError, match="does not hold a state dict"):
        build_backbone("mobilenet_v3_large", weights=tmp_path / "tensor.pt")


# -- compound scaling --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scaling_rows() -> dict[str, dict]:
    return {row["name"]: row for row in compound_scaling_table()}


ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15
"""The paper's compound scaling: depth α^φ, width β^φ, resolution 224·γ^φ."""
TORCHVISION_PARAMS = {
    "efficientnet_b0": 5_288_548,
    "efficientnet_b1": 7_794_184,
    "efficientnet_b2": 9_109_994,
    "efficientnet_b3": 12_233_232,
    "efficientnet_b4": 19_341_616,
    "efficientnet_b5": 30_389_784,
    "efficientnet_b6": 43_040_704,
    "efficientnet_b7": 66_347_960,
}
"""torchvision's documented parameter counts of ``efficientnet_b0`` … ``b7`` (1000-class head)."""


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_coefficients_follow_compound_scaling_roughly(scaling_rows: dict[str, dict], name: str) -> None:
    """The released variants follow α^φ, β^φ, γ^φ only roughly; this pins down how roughly.

    φ comes from the resolution, the finest-grained of the three: φ = log(r / 224) / log γ (0, 0.49,
    1.07, 2.09, 3.78, 5.09, 6.14, 7.05 for B0–B7). The width is within 0.05 of β^φ for every variant:
    half of the 0.1 step the paper rounds it to (the largest gap is B1's, 1.0 for 1.048). The depth is
    within 0.15 of α^φ (1.5 steps) up to B3 (its gap: 0.064); from B4 on the released networks are
    shallower than the rule (1.8 for 1.99 up to 3.1 for 3.62) but deeper than one step of φ less:
    α^(φ-1) ≤ depth < α^φ.
    """
    row = scaling_rows[name]
    phi = math.log(row["resolution"] / 224) / math.log(GAMMA)
    assert row["width"] == pytest.approx(BETA**phi, abs=0.05)
    if phi < 3:
        assert row["depth"] == pytest.approx(ALPHA**phi, abs=0.15)
    else:
        assert ALPHA ** (phi - 1) <= row["depth"] < ALPHA**phi


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_parameter_counts_are_torchvisions(scaling_rows: dict[str, dict], name: str) -> None:
    """The 1000-class network has torchvision's documented size, and the backbone's share plus what
    it leaves out (the 1×1 head conv to 4×C5 channels with its BatchNorm, and the linear
    classifier: last_channel·1000 weights + 1000 biases) adds up to it."""
    row = scaling_rows[name]
    assert row["params"] == TORCHVISION_PARAMS[name]
    c5 = row["out_channels"][-1]
    last_channel = 4 * c5  # torchvision's EfficientNet: lastconv_output_channels = 4 × C5 width
    head_conv = c5 * last_channel + 2 * last_channel  # no bias; BatchNorm weight and bias
    classifier = last_channel * 1000 + 1000
    assert row["backbone_params"] + head_conv + classifier == row["params"]


@pytest.mark.parametrize("name", list(EFFICIENTNET_SCALING))
def test_architecture_follows_its_coefficients(scaling_rows: dict[str, dict], name: str) -> None:
    row = scaling_rows[name]
    assert row["blocks"] == sum(math.ceil(row["depth"] * r) for r in B0_REPEATS)
    assert row["out_channels"] == tuple(round_width(c * row["width"]) for c in (40, 112, 320))
    assert 0 < row["backbone_params"] < row["params"]


def test_sizes_and_costs_match_torchvision(scaling_rows: dict[str, dict]) -> None:
    b0, lite = scaling_rows["efficientnet_b0"], scaling_rows["efficientnet_lite0"]
    assert (lite["width"], lite["depth"], lite["resolution"]) == (1.0, 1.0, 224), "Lite0 is B0's size"
    assert b0["gmacs"] == pytest.approx(0.39, rel=0.05)  # torchvision's documented "GFLOPS"
    assert scaling_rows["efficientnet_b7"]["gmacs"] == pytest.approx(37.75, rel=0.01)
    assert lite["params"] == 4_652_008  # the reference Lite0: no squeeze-excitation
    assert lite["gmacs"] < b0["gmacs"]
    gmacs = [scaling_rows[f"efficientnet_b{i}"]["gmacs"] for i in range(8)]
    assert gmacs == sorted(gmacs)
