"""Transfer learning on a small data set, measured: the same YOLO recipe trained four ways.

(a) the whole backbone frozen (ImageNet features, only neck and head learn), (b) the last three of
its five stages trainable (Vigil's default), (c) everything trainable, (d) no ImageNet weights at
all (random init, everything trainable); equal epochs, input size, batch and learning rate. Each
run is an ordinary ``vigil train`` (checkpoint every epoch, so an interrupted run resumes where it
stopped); this script starts the ones not finished yet, then prints val mAP and training time per
variant and plots val mAP@0.5 against epochs.

    .venv/bin/python bench/transfer.py                       # train what is missing, then report
    .venv/bin/python bench/transfer.py --report-only --plot docs/transfer.png

Pistol data: University of Granada (DaSCI) weapon-detection data set, via ``../shared/data``.
Model selection is on val; the test split is not touched.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "pistols" / "data.yaml"


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    flags: tuple[str, ...]


VARIANTS = (
    Variant("a", "(a) backbone frozen", ("--trainable-stages", "0")),
    Variant("b", "(b) last 3 of 5 stages trained (default)", ("--trainable-stages", "3")),
    Variant("c", "(c) everything trained", ("--trainable-stages", "5")),
    Variant("d", "(d) no ImageNet weights", ("--trainable-stages", "5", "--no-pretrained")),
)


def history(out: Path) -> list[dict[str, float]]:
    metrics = out / "metrics.jsonl"
    if not metrics.exists():
        return []
    return [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]


def median_epoch_seconds(runs: Sequence[dict[str, float]]) -> float:
    """The median epoch's training time: a run paused (SIGSTOP, for a benchmark) or slowed for a
    while on a shared machine shows in one or two epochs, not in the median."""
    ends = [0.0, *(row["train_seconds"] for row in runs)]
    return statistics.median(later - earlier for earlier, later in itertools.pairwise(ends))


def train(variant: Variant, args: argparse.Namespace) -> None:
    out = args.out / variant.key
    if len(history(out)) >= args.epochs:
        return
    command = [
        str(Path(sys.executable).parent / "vigil"), "train", "--data", str(args.data),
        "--model", "yolo_lite0", "--img", str(args.img), "--epochs", str(args.epochs),
        "--batch", str(args.batch), "--lr", str(args.lr), "--workers", "1", "--out", str(out), "--resume",
        *variant.flags,
    ]  # fmt: skip
    print("$", " ".join(command), flush=True)
    subprocess.run(["nice", "-n", str(args.nice), *command], check=True)


def report(args: argparse.Namespace) -> list[dict[str, object]]:
    rows = []
    for variant in VARIANTS:
        runs = history(args.out / variant.key)
        if not runs:
            continue
        best = max(runs, key=lambda row: row["val_map50_95"])
        rows.append({
            "variant": variant.label, "epochs": len(runs), "best_epoch": best["epoch"],
            "val_map50": best["val_map50"], "val_map50_95": best["val_map50_95"],
            "final_map50": runs[-1]["val_map50"], "epoch_seconds": median_epoch_seconds(runs),
            "curve": [row["val_map50"] for row in runs],
        })  # fmt: skip
    print("| variant | epochs | best val mAP@0.5 | best val mAP@.5:.95 | last mAP@0.5 | s per epoch |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['variant']} | {row['epochs']} | {row['val_map50']:.3f} | {row['val_map50_95']:.3f} "
            f"| {row['final_map50']:.3f} | {row['epoch_seconds']:.0f} |"
        )
    return rows


def plot(rows: Sequence[dict[str, object]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for row in rows:
        curve = list(row["curve"])
        axes.plot(range(1, len(curve) + 1), curve, marker="o", label=str(row["variant"]))
    title = "Transfer learning (pistols: U. Granada)"
    axes.set(xlabel="epoch", ylabel="val mAP@0.5", ylim=(0, 1), title=title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "transfer")
    parser.add_argument("--img", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--nice", type=int, default=19)
    parser.add_argument("--only", nargs="*", choices=[v.key for v in VARIANTS], help="train only these")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args(argv)
    if not args.report_only:
        for variant in VARIANTS:
            if not args.only or variant.key in args.only:
                train(variant, args)
    rows = report(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.plot and rows:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
