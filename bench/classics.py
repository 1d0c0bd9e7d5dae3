"""The lecture's detectors side by side on the same split: localization, sliding window, R-CNN,
Fast R-CNN, Faster R-CNN, YOLO.

For each: mAP@0.5 and mAP@0.5:0.95 (pycocotools, ``detector.training.evaluate``), ms per image at
batch 1 on this CPU split by stage (proposals, preprocess, inference, NMS), the regions it scores
per image (windows, selective-search proposals, RPN proposals after NMS, or YOLO's dense anchor
points), the CNN passes and GMACs per image (``FlopCounterMode``, multiply-adds, on a few
images), parameters, and the training time recorded in its checkpoint. Then the lecture's claims,
each with the figures that check it, and a plot of mAP against ms per image.

The localizer, the sliding window and R-CNN share one trained localization model (one training
run, on crops); their rows reuse its weights with other regions. Every model runs through the same
eager PyTorch engine, tcmalloc and passive OpenMP waits (the script re-executes itself for them),
all cores, ``torch.inference_mode``. Pause background jobs while it runs: it prints the CPU.

    .venv/bin/python bench/classics.py --plot docs/classics.png --json docs/classics-val.json
    .venv/bin/python bench/classics.py --limit 20          # a quick look: 20 val images
    .venv/bin/python bench/classics.py --split test        # once, at the end (the final figures)

Pistol data: University of Granada (DaSCI) weapon-detection data set, via ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cpu import describe_cpu, reexec_tuned, tcmalloc_loaded, wait_policy
from detector.models.checkpoint import Checkpoint, reuse_localizer
from detector.models.detector import Detector
from detector.runner import DEFAULT_WEIGHTS
from detector.training.datasets import DataSpec, YoloDataset
from detector.training.evaluate import evaluate

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "detector" / "weights"
"""The localizer ships (it doubles as the alert verifier); the R-CNN family's checkpoints live in
``classics/``, kept out of the wheel and the image."""
DATA = REPO.parent / "shared" / "data" / "pistols" / "data.yaml"


@dataclass(frozen=True)
class Entry:
    """One row: a checkpoint, optionally reused as another region recipe."""

    label: str
    weights: Path
    reuse_as: str | None = None
    options: tuple[tuple[str, object], ...] = ()

    def load(self) -> tuple[Checkpoint, Detector]:
        checkpoint = Checkpoint.load(self.weights)
        if self.reuse_as is not None:
            checkpoint = reuse_localizer(checkpoint, self.reuse_as, **dict(self.options))
        model = checkpoint.build(score_thresh=0.001)
        return checkpoint, model.to(memory_format=torch.channels_last)


def entries(args: argparse.Namespace) -> list[Entry]:
    rows = [
        Entry("localization (1 box / image)", args.localizer),
        Entry("sliding window", args.localizer, "sliding_window_lite0"),
        Entry(
            f"R-CNN ({args.proposals} proposals)",
            args.localizer,
            "rcnn_lite0",
            (("proposals", args.proposals),),
        ),
        Entry("Fast R-CNN", args.fast_rcnn),
        Entry("Faster R-CNN", args.faster_rcnn),
        Entry("YOLO", args.yolo),
    ]
    return [row for row in rows if row.weights.exists() or print(f"skipped {row.label}: no {row.weights}")]


def regions_per_image(model: Detector, image: Tensor) -> int:
    """How many regions the model scores in ``image``."""
    proposer: Callable[[Tensor], Tensor] | None = getattr(model, "proposer", None)
    if proposer is not None:
        return len(proposer(image))
    rpn = getattr(getattr(model, "model", None), "rpn", None)
    if rpn is not None:  # Faster R-CNN: the RPN's proposals after NMS
        return int(rpn._post_nms_top_n["testing"])
    strides = getattr(getattr(model, "head", None), "strides", None)
    if strides is not None:  # YOLO: every anchor point of the letterboxed square
        return sum(math.ceil(model.input_size / stride) ** 2 for stride in strides)
    return 1


def cnn_passes(model: Detector, regions: float) -> str:
    """Backbone runs per image: one per region for the region classifiers, else one."""
    return f"{regions:.0f}" if hasattr(model, "localizer") else "1"


def gmacs_per_image(model: Detector, images: Sequence[Tensor]) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        for image in images:
            model.predict([image])
    return counter.get_total_flops() / 2 / 1e9 / len(images)


def measure(entry: Entry, dataset: YoloDataset, class_names: Sequence[str]) -> dict[str, object]:
    checkpoint, model = entry.load()
    samples = [dataset[index][0] for index in range(min(3, len(dataset)))]
    with torch.inference_mode():
        model.predict(samples[:1])  # warm-up
        regions = sum(regions_per_image(model, image) for image in samples) / len(samples)
    started = time.monotonic()
    with torch.inference_mode():
        report = evaluate(model, dataset, class_names, batch_size=1, score_thresh=0.4)
    training = checkpoint.training
    return {
        "detector": entry.label,
        "checkpoint": str(
            entry.weights.relative_to(REPO) if entry.weights.is_relative_to(REPO) else entry.weights
        ),
        "map50": report.map50,
        "map50_95": report.map50_95,
        "ms_per_image": sum(report.ms_per_image.values()),
        "ms_by_stage": report.ms_per_image,
        "regions_per_image": regions,
        "cnn_passes_per_image": cnn_passes(model, regions),
        "gmacs_per_image": gmacs_per_image(model, samples),
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "train_minutes": training.get("train_seconds", 0) / 60,
        "train_epochs": training.get("epochs"),
        "train_hardware": training.get("hardware", "?"),
        "eval_seconds": time.monotonic() - started,
    }


def print_table(rows: Sequence[dict[str, object]]) -> None:
    print(
        f"| {'detector':<28} | mAP@0.5 | mAP@.5:.95 | ms/image | proposals | inference | regions/img "
        "| CNN passes | GMACs/img | params M | training |"
    )
    print("|" + "---|" * 11)
    for row in rows:
        stages = row["ms_by_stage"]
        cells = [
            f"{row['detector']:<28}", f"{row['map50']:.3f}", f"{row['map50_95']:.3f}",
            f"{row['ms_per_image']:.0f}", f"{stages.get('proposals', 0):.0f}",
            f"{stages.get('inference', 0):.0f}", f"{row['regions_per_image']:.0f}",
            str(row["cnn_passes_per_image"]), f"{row['gmacs_per_image']:.1f}", f"{row['params_m']:.2f}",
            f"{row['train_minutes']:.0f} min, {row['train_epochs']} ep",
        ]  # fmt: skip
        print("| " + " | ".join(cells) + " |")


def print_claims(rows: Sequence[dict[str, object]]) -> None:
    """Each claim with the figures that check it (n/a where a row is missing)."""
    by_name = {str(row["detector"]).split(" (")[0]: row for row in rows}

    def value(name: str, key: str, stage: str | None = None) -> float:
        row = by_name.get(name)
        if row is None:
            return float("nan")
        return float(row["ms_by_stage"].get(stage, 0.0)) if stage else float(row[key])

    def ratio(a: str, b: str, key: str) -> str:
        return f"{value(a, key) / value(b, key):.1f}×" if a in by_name and b in by_name else "n/a"

    passes = by_name.get("R-CNN", {}).get("cnn_passes_per_image", "n/a")
    print("\nThe lecture's claims, checked:")
    print(
        f"- R-CNN is slow because it runs the CNN per proposal: {passes} CNN passes per image, "
        f"{ratio('R-CNN', 'Fast R-CNN', 'gmacs_per_image')} the GMACs and "
        f"{ratio('R-CNN', 'Fast R-CNN', 'ms_per_image')} the time of Fast R-CNN on the same proposals."
    )
    print(
        f"- Fast R-CNN shares it: CNN + heads {value('Fast R-CNN', '', 'inference'):.0f} ms per image vs "
        f"R-CNN's {value('R-CNN', '', 'inference'):.0f} ms; selective search is now its slowest stage "
        f"({value('Fast R-CNN', '', 'proposals'):.0f} ms)."
    )
    print(
        "- Faster R-CNN learns the proposals (no selective search): "
        f"{ratio('Fast R-CNN', 'Faster R-CNN', 'ms_per_image')} faster than Fast R-CNN, "
        f"mAP@0.5 {value('Faster R-CNN', 'map50'):.3f} vs {value('Fast R-CNN', 'map50'):.3f}."
    )
    print(
        f"- YOLO does it in one pass: {ratio('Faster R-CNN', 'YOLO', 'ms_per_image')} faster than Faster "
        f"R-CNN, {ratio('R-CNN', 'YOLO', 'ms_per_image')} faster than R-CNN; "
        f"mAP@0.5 {value('YOLO', 'map50'):.3f}."
    )


def plot(rows: Sequence[dict[str, object]], path: Path, split: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        ms, map50, map50_95 = float(row["ms_per_image"]), float(row["map50"]), float(row["map50_95"])
        axes.scatter([ms], [map50], marker="o", color="C0")
        axes.scatter([ms], [map50_95], marker="s", color="C1")
        axes.annotate(
            str(row["detector"]), (ms, map50), textcoords="offset points", xytext=(5, 4), fontsize=8
        )
    axes.scatter([], [], marker="o", color="C0", label="mAP@0.5")
    axes.scatter([], [], marker="s", color="C1", label="mAP@0.5:0.95")
    axes.set(
        xscale="log", xlabel="ms per image, batch 1, this CPU (log)", ylabel="mAP", ylim=(0, 1),
        title=f"Pistol detection ({split}; data: University of Granada)",
    )  # fmt: skip
    axes.grid(alpha=0.3, which="both")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--split", default="val", choices=("val", "test"))
    parser.add_argument("--limit", type=int, help="only the first N images (a quick look)")
    parser.add_argument("--localizer", type=Path, default=WEIGHTS / "localizer-lite0.pt")
    parser.add_argument("--fast-rcnn", type=Path, default=WEIGHTS / "classics" / "fast-rcnn-lite0.pt")
    parser.add_argument("--faster-rcnn", type=Path, default=WEIGHTS / "classics" / "frcnn-lite0.pt")
    parser.add_argument("--yolo", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--proposals", type=int, default=500, help="R-CNN's selective-search proposals")
    parser.add_argument("--only", nargs="*", help="only the detectors whose label starts with these")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    reexec_tuned(__file__, sys.argv[1:], spin_wait=False, tcmalloc=True)

    spec = DataSpec.load(args.data)
    dataset = YoloDataset(spec.splits[args.split])
    if args.limit:
        dataset.samples = dataset.samples[: args.limit]
    print(f"CPU: {describe_cpu()}; {torch.get_num_threads()} torch threads; torch {torch.__version__}")
    print(f"tcmalloc: {tcmalloc_loaded()}; OMP_WAIT_POLICY: {wait_policy()}")
    print(f"{args.split}: {len(dataset)} images of {spec.root} (University of Granada pistol data)\n")
    rows = []
    for entry in entries(args):
        if args.only and not any(entry.label.startswith(prefix) for prefix in args.only):
            continue
        row = measure(entry, dataset, spec.names)
        rows.append(row)
        print(
            f"  {row['detector']}: mAP@0.5 {row['map50']:.3f}, {row['ms_per_image']:.0f} ms/image",
            flush=True,
        )
    print()
    print_table(rows)
    print_claims(rows)
    if args.json:
        args.json.write_text(
            json.dumps({"split": args.split, "cpu": describe_cpu(), "rows": rows}, indent=2)
        )
    if args.plot:
        plot(rows, args.plot, args.split)
        print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
