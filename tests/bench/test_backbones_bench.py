"""``bench/backbones.py`` on a small scale: its table-building functions on two small networks at a
tiny input, checked against torchvision's documented sizes, costs and accuracies."""

from __future__ import annotations

import pytest

from bench.backbones import (
    LECTURE,
    RatioClaim,
    Timing,
    b0_claim,
    evaluation_size,
    measure_backbones,
    measure_pretrained,
)

TINY = Timing(repeats=2, warmup=1, sample_ms=1.0)
SIZE = 64


def test_backbone_rows_have_torchvisions_sizes_and_costs() -> None:
    rows = {row.name: row for row in measure_backbones(("efficientnet_b0", "resnet50"), SIZE, TINY)}

    resnet, b0 = rows["resnet50"], rows["efficientnet_b0"]
    assert resnet.classifier_params == 25_557_032
    assert resnet.backbone_params == 25_557_032 - (2048 * 1000 + 1000)  # without the fc layer
    assert b0.classifier_params == 5_288_548
    assert 0 < b0.backbone_params < b0.classifier_params
    assert (resnet.native_size, b0.native_size) == (224, 224)
    assert resnet.classifier_gmacs == pytest.approx(4.089, abs=5e-4)  # torchvision's "GFLOPS"
    assert b0.classifier_gmacs == pytest.approx(0.386, abs=5e-4)
    assert 0 < b0.backbone_gmacs < b0.classifier_gmacs  # 64 px is far below the native 224
    for row in rows.values():
        assert row.size == SIZE and len(row.samples_ms) == TINY.repeats and row.ms > 0
    assert b0_claim(list(rows.values())) == {"params_m": 5.288548, "paper_m": 5.3, "matches": True}


def test_pretrained_rows_read_torchvisions_metadata_offline() -> None:
    models = [m for m in LECTURE if m.name in ("efficientnet_b0", "mobilenet_v3_small")]
    rows = {row.name: row for row in measure_pretrained(models, TINY, size=SIZE)}

    b0, small = rows["efficientnet_b0"], rows["mobilenet_v3_small"]
    assert (b0.params, small.params) == (5_288_548, 2_542_856)
    assert all(row.params == row.documented_params for row in rows.values())
    assert b0.no_top_params == 5_288_548 - (1280 * 1000 + 1000)
    assert b0.accuracy == {"IMAGENET1K_V1": {"acc@1": 77.692, "acc@5": 93.532}}
    assert (b0.lecture_name, b0.lecture_params_m, small.lecture_params_m) == ("EfficientNet-B0", 5.3, 2.3)
    assert b0.documented_gmacs == 0.386 and 0 < b0.gmacs < b0.documented_gmacs
    assert all(row.aux_params == 0 and len(row.samples_ms) == TINY.repeats for row in rows.values())


def test_evaluation_sizes_are_torchvisions_crops() -> None:
    assert [evaluation_size(name) for name in ("resnet50", "inception_v3", "vgg16")] == [224, 299, 224]


def test_ratio_claim_pairs_times_within_each_repeat() -> None:
    claim = RatioClaim("x", b3_gmacs=1.0, r101_gmacs=4.0, b3_samples_ms=[10, 20], r101_samples_ms=[30, 40])
    assert claim.flops_ratio == 4.0
    assert claim.ms_ratio == pytest.approx(2.5)  # median of 30/10 and 40/20
    assert claim.rate_gap == pytest.approx(1.6)
