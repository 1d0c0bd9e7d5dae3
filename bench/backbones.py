"""Backbones side by side: parameters, multiply-adds and CPU ms per image, next to the figures of the
EfficientNet paper and of the lecture's "summary of pretrained models".

1. **Detector backbones** (``detector.models.backbones``) at ``--size`` (384) px: EfficientNet B0–B4,
   Lite0, MobileNetV3-Large, ResNet-50 and ResNet-101. Parameters of the backbone (stem to C5, as the
   detectors use it) and of the 1000-class classifier it is cut from; GMACs of the backbone at
   ``--size`` and of the classifier at its native resolution (the paper's 224–380 px for
   EfficientNets, 224 for the others); ms per image of the backbone. Then the claims: B0 has 5.3 M
   parameters; "B3 beats ResNet-101 with 18× fewer FLOPs". The paper's 18× compares B3 (1.8 B FLOPs,
   which are multiply-adds) with ResNeXt-101 (32 B, its Table 2). Against torchvision's ResNet-101 the
   FLOPs and time ratios are measured at the same resolution (backbones at ``--size``; classifiers at
   300 px) and in the paper's setting (B3 at its 300 px, ResNet-101 at its 224).
2. **The lecture's summary of pretrained models**: torchvision's classifiers at the crop their
   ImageNet weights are evaluated at (224 px; Inception v3 299): parameters (also without the
   classification head, like Keras's ``include_top=False``), GMACs, ms per image, next to the
   lecture's parameter counts and torchvision's documented ImageNet-1K acc@1/acc@5. Those come from
   torchvision's weights metadata (``get_model_weights(name)``), which is part of the package:
   nothing is downloaded.

How:

* GMACs: ``FlopCounterMode`` on the meta device, halved (``count_gmacs``): convolutions and matrix
  products, the convention of torchvision's "GFLOPS" column (printed alongside) and of the paper's FLOPs.
* Weights: random init (``weights=None``). Speed does not depend on the values, except through
  denormal floats: a fresh EfficientNet's activations shrink to ~1e-13 by C5, so denormals are
  flushed to zero.
* ms per image: batch 1, a random image, ``torch.inference_mode()``, channels_last, torch threads =
  ``--threads`` (every core). As in the detector service, OpenMP threads wait passively
  (``OMP_WAIT_POLICY=PASSIVE``) and tcmalloc is preloaded where installed; the script re-runs itself
  to get both. Every network gets warm-up calls; each sample then averages as many calls as last
  about ``--sample-ms``.
* Noise: the repeats are interleaved round-robin over the networks of a table, with a rotated order,
  and medians are printed. A time ratio is the median of the ratios within each repeat.

    .venv/bin/python bench/backbones.py                     # about 1 minute on 2 cores (15 repeats)
    .venv/bin/python bench/backbones.py --quick             # about 30 s: 3 repeats, 1 warm-up
    .venv/bin/python bench/backbones.py --size 320 --json /tmp/backbones.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch import Tensor, nn
from torchvision.models import get_model, get_model_weights

from bench._cpu import TCMALLOC, describe_cpu, interleaved, reexec_tuned, tcmalloc_loaded, wait_policy
from detector.models.backbones import (
    EFFICIENTNET_SCALING,
    build_backbone,
    build_classifier,
    count_gmacs,
    count_params,
)

DETECTOR_BACKBONES = (
    "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4",
    "efficientnet_lite0", "mobilenet_v3_large", "resnet50", "resnet101",
)  # fmt: skip
DEFAULT_SIZE = 384
CLASSIFIER_SIZE = 224
"""Native resolution of the classifiers that are not EfficientNets."""
B0, B3, R101 = "efficientnet_b0", "efficientnet_b3", "resnet101"
PAPER_B0_PARAMS_M = 5.3
PAPER_B3_GFLOPS, PAPER_RESNEXT101_GFLOPS = 1.8, 32.0
"""The paper's Table 2, the figures behind "B3 … 18× fewer FLOPs" (ResNeXt-101; ResNet-101 is not in
the table). Its FLOPs are multiply-adds: B0's 0.39 B is torchvision's 0.386 GMACs."""
HEADS = ("classifier", "fc", "AuxLogits")
"""torchvision's names for the classification layers that ``include_top=False`` leaves out."""
BUILD_OPTIONS: dict[str, dict[str, Any]] = {"inception_v3": {"init_weights": True}}
"""Said explicitly, to silence torchvision's warning about a future change of its default init."""


@dataclass(frozen=True)
class LectureModel:
    """A row of the lecture's summary: the torchvision network and the lecture's name and size."""

    name: str
    lecture_name: str
    lecture_params_m: float


LECTURE = (
    LectureModel("efficientnet_b0", "EfficientNet-B0", 5.3),
    LectureModel("mobilenet_v2", "MobileNet", 2.3),
    LectureModel("mobilenet_v3_small", "MobileNet", 2.3),
    LectureModel("mobilenet_v3_large", "MobileNet", 2.3),
    LectureModel("resnet50", "ResNet-50", 25.6),
    LectureModel("inception_v3", "Inception", 22.9),
    LectureModel("vgg16", "VGG16", 138.0),
    LectureModel("alexnet", "AlexNet", 62.0),
)


# -- timing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """How each network is timed: interleaved repeats, warm-up calls, and the length of a sample."""

    repeats: int = 15
    warmup: int = 2
    sample_ms: float = 100.0


@dataclass(frozen=True)
class Subject:
    """One network timed at one input size; ``build`` makes it (random init) on the CPU."""

    key: str
    build: Callable[[], nn.Module]
    size: int


def time_subjects(subjects: Sequence[Subject], timing: Timing) -> dict[str, list[float]]:
    """ms per image of each subject at batch 1, one figure per repeat, in repeat order."""
    models = {s.key: s.build().eval().to(memory_format=torch.channels_last) for s in subjects}
    images = {s.key: _image(s.size) for s in subjects}
    calls: dict[str, int] = {}
    samples: dict[str, list[float]] = {s.key: [] for s in subjects}
    with torch.inference_mode():
        for subject in subjects:
            model, image = models[subject.key], images[subject.key]
            for _ in range(timing.warmup):
                model(image)
            calls[subject.key] = max(1, math.ceil(timing.sample_ms / _ms_per_call(model, image, 1)))
        for _, subject in interleaved(subjects, timing.repeats):
            samples[subject.key].append(
                _ms_per_call(models[subject.key], images[subject.key], calls[subject.key])
            )
    return samples


def _image(size: int) -> Tensor:
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    return image.contiguous(memory_format=torch.channels_last)


def _ms_per_call(model: nn.Module, image: Tensor, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        model(image)
    return 1000 * (time.perf_counter() - started) / calls


def paired_ratio(slower: Sequence[float], faster: Sequence[float]) -> float:
    """Median over repeats of ``slower / faster``: both figures of each ratio come from one repeat."""
    return statistics.median(a / b for a, b in zip(slower, faster, strict=True))


# -- table 1: detector backbones -----------------------------------------------------------------


@dataclass
class BackboneRow:
    name: str
    backbone_params: int
    classifier_params: int
    size: int
    backbone_gmacs: float
    native_size: int
    classifier_gmacs: float
    samples_ms: list[float] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return statistics.median(self.samples_ms)


def native_size(name: str) -> int:
    return EFFICIENTNET_SCALING[name][2] if name in EFFICIENTNET_SCALING else CLASSIFIER_SIZE


def backbone_key(name: str, size: int) -> str:
    return f"backbone {name} @{size}"


def measure_backbones(names: Sequence[str], size: int, timing: Timing) -> list[BackboneRow]:
    rows = []
    for name in names:
        with torch.device("meta"):
            backbone = build_backbone(name, pretrained=False).eval()
            classifier = build_classifier(name).eval()
        rows.append(
            BackboneRow(
                name=name,
                backbone_params=count_params(backbone),
                classifier_params=count_params(classifier),
                size=size,
                backbone_gmacs=count_gmacs(backbone, size),
                native_size=native_size(name),
                classifier_gmacs=count_gmacs(classifier, native_size(name)),
            )
        )
    subjects = [
        Subject(backbone_key(n, size), partial(build_backbone, n, pretrained=False), size) for n in names
    ]
    samples = time_subjects(subjects, timing)
    for row in rows:
        row.samples_ms = samples[backbone_key(row.name, size)]
    return rows


def print_backbones(rows: Sequence[BackboneRow]) -> None:
    size = rows[0].size
    print(f"\n1. Detector backbones (stem to C5) at {size}×{size}, batch 1; classifiers at native resolution")
    print(
        f"{'backbone':<20}{'backbone M':>11}{'classifier M':>13}{f'GMACs @{size}':>11}"
        f"{'native':>8}{'cls GMACs':>10}{'ms/img':>9}   samples ms"
    )
    for row in rows:
        spread = " ".join(f"{ms:.0f}" for ms in row.samples_ms)
        print(
            f"{row.name:<20}{row.backbone_params / 1e6:>11.2f}{row.classifier_params / 1e6:>13.2f}"
            f"{row.backbone_gmacs:>11.2f}{row.native_size:>8}{row.classifier_gmacs:>10.3f}"
            f"{row.ms:>9.1f}   {spread}"
        )


# -- claims: B0's size, B3 against ResNet-101 ----------------------------------------------------


@dataclass
class RatioClaim:
    """B3 against ResNet-101 in one setting: GMACs and ms of each, and the ratios R101 / B3."""

    setting: str
    b3_gmacs: float
    r101_gmacs: float
    b3_samples_ms: list[float]
    r101_samples_ms: list[float]

    @property
    def flops_ratio(self) -> float:
        return self.r101_gmacs / self.b3_gmacs

    @property
    def ms_ratio(self) -> float:
        return paired_ratio(self.r101_samples_ms, self.b3_samples_ms)

    @property
    def rate_gap(self) -> float:
        """How many times more multiply-adds per second ResNet-101 gets done than B3."""
        return self.flops_ratio / self.ms_ratio


def classifier_key(name: str, size: int) -> str:
    return f"classifier {name} @{size}"


def measure_claims(backbones: Sequence[BackboneRow], timing: Timing) -> list[RatioClaim]:
    """B3 against ResNet-101: the backbones of table 1 at its size, and the classifiers at 300 px
    (both) and at their own resolutions (B3 300, ResNet-101 224: the paper's setting)."""
    b3_size, r101_size = native_size(B3), native_size(R101)
    pairs = {(B3, b3_size), (R101, b3_size), (R101, r101_size)}
    subjects = [Subject(classifier_key(n, s), partial(build_classifier, n), s) for n, s in sorted(pairs)]
    samples = time_subjects(subjects, timing)
    with torch.device("meta"):
        classifiers = {name: build_classifier(name).eval() for name in (B3, R101)}

    def classifiers_claim(setting: str, r101_at: int) -> RatioClaim:
        return RatioClaim(
            setting,
            count_gmacs(classifiers[B3], b3_size),
            count_gmacs(classifiers[R101], r101_at),
            samples[classifier_key(B3, b3_size)],
            samples[classifier_key(R101, r101_at)],
        )

    by_name = {row.name: row for row in backbones}
    b3, r101 = by_name[B3], by_name[R101]
    return [
        RatioClaim(
            f"backbones, both at {b3.size} px (table 1)",
            b3.backbone_gmacs,
            r101.backbone_gmacs,
            b3.samples_ms,
            r101.samples_ms,
        ),
        classifiers_claim(f"classifiers, both at {b3_size} px", b3_size),
        classifiers_claim(f"classifiers, B3 at {b3_size} px, ResNet-101 at {r101_size} (paper's)", r101_size),
    ]


def b0_claim(backbones: Sequence[BackboneRow]) -> dict[str, Any]:
    params_m = next(row.classifier_params for row in backbones if row.name == B0) / 1e6
    return {
        "params_m": params_m,
        "paper_m": PAPER_B0_PARAMS_M,
        "matches": round(params_m, 1) == PAPER_B0_PARAMS_M,
    }


def print_claims(b0: dict[str, Any], claims: Sequence[RatioClaim]) -> None:
    verdict = "matches, to the paper's 0.1 M" if b0["matches"] else "does not match"
    print(
        f"\nclaim: B0 has {b0['paper_m']} M parameters. "
        f"Measured: {b0['params_m']:.3f} M (classifier): {verdict}"
    )
    paper = PAPER_RESNEXT101_GFLOPS / PAPER_B3_GFLOPS
    print(
        f'claim: "B3 beats ResNet-101 with 18× fewer FLOPs". The paper\'s 18× is ResNeXt-101 '
        f"({PAPER_RESNEXT101_GFLOPS:g} B FLOPs) / B3 ({PAPER_B3_GFLOPS} B) = {paper:.1f}× in its Table 2, "
        "whose FLOPs are multiply-adds\n(B0: 0.39 B); ResNet-101 is not in that table. "
        "Against torchvision's ResNet-101:"
    )
    print(
        f"  {'setting':<56}{'B3 GMACs':>9}{'R101 GMACs':>11}{'FLOPs ×':>8}"
        f"{'B3 ms':>8}{'R101 ms':>8}{'time ×':>8}{'MAC/s gap':>10}"
    )
    for claim in claims:
        print(
            f"  {claim.setting:<56}{claim.b3_gmacs:>9.2f}{claim.r101_gmacs:>11.2f}{claim.flops_ratio:>8.1f}"
            f"{statistics.median(claim.b3_samples_ms):>8.1f}{statistics.median(claim.r101_samples_ms):>8.1f}"
            f"{claim.ms_ratio:>8.2f}{claim.rate_gap:>10.1f}"
        )
    print(
        "  FLOPs × and time ×: ResNet-101 / B3 (time: median of per-repeat ratios); MAC/s gap: how many\n"
        "  times more multiply-adds per second ResNet-101 gets done (FLOPs × / time ×)"
    )


# -- table 2: the lecture's summary of pretrained models -----------------------------------------


@dataclass
class PretrainedRow:
    name: str
    lecture_name: str
    lecture_params_m: float
    params: int
    no_top_params: int
    aux_params: int
    documented_params: int
    size: int
    gmacs: float
    documented_gmacs: float
    accuracy: dict[str, dict[str, float]]
    """Weights name → torchvision's documented ImageNet-1K ``acc@1`` and ``acc@5``: V1 and DEFAULT."""
    samples_ms: list[float] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return statistics.median(self.samples_ms)


def evaluation_size(name: str) -> int:
    """The crop that torchvision's default weights for ``name`` are evaluated at."""
    return get_model_weights(name).DEFAULT.transforms().crop_size[0]


def documented_accuracy(name: str) -> dict[str, dict[str, float]]:
    weights = get_model_weights(name)
    chosen = {weights["IMAGENET1K_V1"], weights.DEFAULT}
    return {w.name: dict(w.meta["_metrics"]["ImageNet-1K"]) for w in sorted(chosen, key=lambda w: w.name)}


def build_torchvision(name: str) -> nn.Module:
    return get_model(name, weights=None, **BUILD_OPTIONS.get(name, {}))


def measure_pretrained(
    models: Sequence[LectureModel], timing: Timing, size: int | None = None
) -> list[PretrainedRow]:
    """Table 2, each network at its evaluation crop, or at ``size`` if given."""
    rows = []
    for model in models:
        at = size or evaluation_size(model.name)
        with torch.device("meta"):
            network = build_torchvision(model.name).eval()
        meta = get_model_weights(model.name).DEFAULT.meta
        heads = [getattr(network, head) for head in HEADS if hasattr(network, head)]
        rows.append(
            PretrainedRow(
                name=model.name,
                lecture_name=model.lecture_name,
                lecture_params_m=model.lecture_params_m,
                params=count_params(network),
                no_top_params=count_params(network) - sum(count_params(head) for head in heads),
                aux_params=count_params(network.AuxLogits) if hasattr(network, "AuxLogits") else 0,
                documented_params=meta["num_params"],
                size=at,
                gmacs=count_gmacs(network, at),
                documented_gmacs=meta["_ops"],
                accuracy=documented_accuracy(model.name),
            )
        )
    subjects = [
        Subject(classifier_key(r.name, r.size), partial(build_torchvision, r.name), r.size) for r in rows
    ]
    samples = time_subjects(subjects, timing)
    for row in rows:
        row.samples_ms = samples[classifier_key(row.name, row.size)]
    return rows


def print_pretrained(rows: Sequence[PretrainedRow]) -> None:
    print(
        "\n2. The lecture's summary of pretrained models: torchvision classifiers at their evaluation crop, "
        "batch 1"
    )
    print(
        f"{'network':<20}{'lecture':<17}{'lecture M':>10}{'params M':>9}{'no-top M':>9}{'px':>5}"
        f"{'GMACs':>7}{'tv GMACs':>9}{'ms/img':>8}   torchvision ImageNet-1K acc@1/acc@5"
    )
    for row in rows:
        documented = "" if row.params == row.documented_params else f" (documented {row.documented_params:,})"
        accuracy = "; ".join(f"{name} {m['acc@1']:.2f}/{m['acc@5']:.2f}" for name, m in row.accuracy.items())
        print(
            f"{row.name:<20}{row.lecture_name:<17}{row.lecture_params_m:>10g}{row.params / 1e6:>9.2f}"
            f"{row.no_top_params / 1e6:>9.2f}{row.size:>5}{row.gmacs:>7.2f}{row.documented_gmacs:>9.3f}"
            f"{row.ms:>8.1f}   {accuracy}{documented}"
        )
    print(
        "params M: as torchvision builds the network (equal to its documented num_params unless noted);\n"
        "no-top M: without the classification layers (torchvision's classifier / fc, and AuxLogits)"
    )
    for row in rows:
        if row.aux_params:
            print(
                f"{row.name}: {row.aux_params / 1e6:.2f} M of its {row.params / 1e6:.2f} M are the auxiliary "
                f"classifier, used in training only: {(row.params - row.aux_params) / 1e6:.2f} M at inference"
            )
    print(
        "MobileNet v1 is not in torchvision: the lecture's MobileNet row is compared with v2, "
        "v3-Small and v3-Large"
    )


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    defaults = Timing()
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="input side of the backbones (px)")
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="interleaved samples (median)")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed calls per network")
    parser.add_argument(
        "--sample-ms", type=float, default=defaults.sample_ms, help="about how long a sample lasts"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 3 repeats, 1 warm-up, 50 ms samples"
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    parser.add_argument("--json", type=Path, help="also write every figure and sample here")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.sample_ms = 3, 1, 50.0
    return args


def environment() -> dict[str, Any]:
    return {
        "cpu": describe_cpu(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "allocator": "tcmalloc (LD_PRELOAD)" if tcmalloc_loaded() else "glibc malloc",
        "omp_wait_policy": wait_policy(),
    }


def print_header(env: dict[str, Any], timing: Timing, flushed: bool) -> None:
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"cpu: {env['cpu']}")
    print(
        f"torch {env['torch']}; threads {env['threads']} of {env['cores']} cores; {env['allocator']}; "
        f"OMP_WAIT_POLICY {env['omp_wait_policy']}; load average {load}"
    )
    print(
        f"batch 1, channels_last, inference_mode, random init, denormals flushed: {flushed}; "
        f"{timing.repeats} interleaved repeats of ~{timing.sample_ms:g} ms samples "
        f"after {timing.warmup} warm-up calls"
    )


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    reexec_tuned(__file__, argv, spin_wait=False, tcmalloc=Path(TCMALLOC).is_file())
    torch.set_num_threads(args.threads)
    flushed = torch.set_flush_denormal(True)
    timing = Timing(args.repeats, args.warmup, args.sample_ms)
    started = time.perf_counter()
    env = environment()
    print_header(env, timing, flushed)
    backbones = measure_backbones(DETECTOR_BACKBONES, args.size, timing)
    print_backbones(backbones)
    b0, claims = b0_claim(backbones), measure_claims(backbones, timing)
    print_claims(b0, claims)
    pretrained = measure_pretrained(LECTURE, timing)
    print_pretrained(pretrained)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average at the end {load}")
    if args.json:
        payload = {
            "environment": env,
            "config": {**asdict(timing), "size": args.size, "flush_denormal": flushed},
            "backbones": [{**asdict(row), "ms": row.ms} for row in backbones],
            "claims": {
                "b0": b0,
                "b3_vs_resnet101": [
                    {
                        **asdict(c),
                        "flops_ratio": c.flops_ratio,
                        "ms_ratio": c.ms_ratio,
                        "rate_gap": c.rate_gap,
                    }
                    for c in claims
                ],
            },
            "pretrained": [{**asdict(row), "ms": row.ms} for row in pretrained],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
