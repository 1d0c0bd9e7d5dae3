"""What the second-stage verifier does to false detections and to recall, on the pistol val split.

The shipped YOLO runs on each val image as ingest would publish it (resized to the cameras'
default ``max_side``, JPEG at their default quality): the frame the detector service sees. Each
detection at or above the operating score threshold is verified exactly as the service verifies a
track, with ``detector.verifier.Verifier``: its box grown by the context margin, cut from that
frame at its own size, warped to the localizer's input and scored, an image's boxes in one call. A
detection counts only if its verify score reaches the verify threshold. Precision, recall and F1
at IoU 0.5 (``detector.training.evaluate.operating_points``), without the verifier and with verify
thresholds 0.1-0.9, and the verifier's ms per call of K crops on this CPU.

    .venv/bin/python bench/verifier.py --json docs/verifier-val.json
    .venv/bin/python bench/verifier.py --limit 30 --localizer runs/localizer_lite0/best.pt

Val only: thresholds are chosen on val, and the test split is kept for the models' final figures.
Pistol data: University of Granada (DaSCI) weapon-detection data set (Olmos, Tabik & Herrera,
2018), via ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cpu import describe_cpu, reexec_tuned, tcmalloc_loaded, wait_policy
from detector.models.box_ops import iou_matrix
from detector.models.checkpoint import Checkpoint
from detector.runner import DEFAULT_WEIGHTS
from detector.training.datasets import DataSpec, YoloDataset
from detector.training.evaluate import operating_points
from detector.verifier import DEFAULT_VERIFIER_WEIGHTS, Candidates, Verifier
from ingest.sampler import encode, resize
from shared.config import CameraConfig, VerifierConfig

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "pistols" / "data.yaml"
VERIFY_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TIMED_CROPS = (1, 4, 16)


def frames(
    dataset: YoloDataset, *, max_side: int | None, jpeg_quality: int
) -> list[tuple[Tensor, dict[str, Tensor]]]:
    """Each val image as the frame ingest would publish (resized to ``max_side``, JPEG), decoded:
    RGB CHW uint8, with its boxes scaled along."""
    samples = []
    for index in range(len(dataset)):
        image, boxes, classes = dataset.load(index)
        resized = resize(image[:, :, ::-1], max_side)
        data = encode(resized, "jpeg", jpeg_quality)
        rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
        scale = resized.shape[1] / image.shape[1]
        tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()
        target = {"boxes": torch.from_numpy(boxes).float() * scale, "labels": torch.from_numpy(classes)}
        samples.append((tensor, target))
    return samples


@torch.inference_mode()
def detect_and_verify(
    detector: torch.nn.Module, verifier: Verifier, samples: Sequence[tuple[Tensor, dict]], min_score: float
) -> tuple[list[dict[str, Tensor]], list[tuple[int, float]]]:
    """YOLO's detections per image (``scores``, and ``verify`` for those ≥ ``min_score``, else -1),
    and (crops, seconds) of every verifier call."""
    predictions, calls = [], []
    for image, _target in samples:
        result = {k: v.cpu() for k, v in detector.predict([image])[0].items()}
        candidates = (result["scores"] >= min_score).nonzero().flatten()
        verify = torch.full_like(result["scores"], -1.0)
        if len(candidates):
            boxes = [tuple(box) for box in result["boxes"][candidates].tolist()]
            labels = [detector.class_names[label] for label in result["labels"][candidates].tolist()]
            started = time.perf_counter()
            (scores,) = verifier.score([Candidates(image, boxes, labels)])
            calls.append((len(boxes), time.perf_counter() - started))
            verify[candidates] = torch.tensor(scores)
        predictions.append(result | {"verify": verify})
    return predictions, calls


def table(predictions: Sequence[dict[str, Tensor]], targets: Sequence[dict], score: float) -> list[dict]:
    """Rows: YOLO alone at ``score``, then YOLO ≥ ``score`` and verify ≥ each threshold."""
    positives = sum(len(t["boxes"]) for t in targets)

    def counted(scored: Sequence[dict[str, Tensor]], thresholds: Sequence[float]) -> list[dict]:
        """Precision, recall, F1 and the detections kept (true, false) at each threshold."""
        out = []
        for point in operating_points(scored, targets, thresholds):
            threshold = point.pop("score")
            kept = sum(int((p["scores"] >= threshold).sum()) for p in scored)
            true_pos = round(point["recall"] * positives)
            out.append({"threshold": threshold, **point, "kept": kept, "true_pos": true_pos,
                        "false_pos": kept - true_pos})  # fmt: skip
        return out

    (alone,) = counted(predictions, (score,))
    as_verified = [p | {"scores": torch.where(p["scores"] >= score, p["verify"], -1.0)} for p in predictions]
    return [{"score": score, "verify": None, **alone}] + [
        {"score": score, "verify": row["threshold"], **row} for row in counted(as_verified, VERIFY_THRESHOLDS)
    ]


OVERLAP_BINS = (("on a pistol (IoU ≥ 0.5)", 0.5, 1.01), ("near one (IoU 0.1-0.5)", 0.1, 0.5),
                ("background (IoU < 0.1)", -1.0, 0.1))  # fmt: skip


def by_overlap(predictions: Sequence[dict[str, Tensor]], targets: Sequence[dict], score: float) -> list[dict]:
    """The detections ≥ ``score`` by their best IoU with any pistol: how many, and their verify scores
    (where the false ones are, and which of them a crop classifier can tell from a pistol)."""
    best = []
    for prediction, target in zip(predictions, targets, strict=True):
        keep = prediction["scores"] >= score
        if len(target["boxes"]) and keep.any():
            ious = iou_matrix(prediction["boxes"][keep], target["boxes"]).max(dim=1).values
        else:
            ious = torch.zeros(int(keep.sum()))
        best += list(zip(ious.tolist(), prediction["verify"][keep].tolist(), strict=True))
    rows = []
    for name, low, high in OVERLAP_BINS:
        verify = [v for iou, v in best if low <= iou < high]
        rows.append({"score": score, "overlap": name, "detections": len(verify),
                     "median_verify": statistics.median(verify) if verify else None,
                     "verify_below_0.5": sum(v < 0.5 for v in verify),
                     "verify_below_0.9": sum(v < 0.9 for v in verify)})  # fmt: skip
    return rows


def time_batches(
    verifier: Verifier, image: Tensor, box: tuple[float, ...], repeats: int = 7
) -> dict[int, float]:
    """Median ms of one verifier call of K copies of ``box`` in ``image``, for each K."""
    result = {}
    for count in TIMED_CROPS:
        candidates = [Candidates(image, [box] * count, [verifier.model.class_names[0]] * count)]
        verifier.score(candidates)  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            verifier.score(candidates)
            times.append(time.perf_counter() - started)
        result[count] = 1000 * statistics.median(times)
    return result


def print_rows(rows: Sequence[dict], positives: int) -> None:
    print(f"\n{positives} pistols in the images\n")
    print("| YOLO score ≥ | verify ≥ | detections | true | false | precision | recall | F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        verify = "no verifier" if row["verify"] is None else f"{row['verify']:.1f}"
        print(f"| {row['score']:.2f} | {verify} | {row['kept']} | {row['true_pos']} | {row['false_pos']} | "
              f"{row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} |")  # fmt: skip


def print_overlap(rows: Sequence[dict]) -> None:
    print("\n| YOLO score ≥ | detection | count | median verify | verify < 0.5 | verify < 0.9 |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        median = "-" if row["median_verify"] is None else f"{row['median_verify']:.3f}"
        print(f"| {row['score']:.2f} | {row['overlap']} | {row['detections']} | {median} | "
              f"{row['verify_below_0.5']} | {row['verify_below_0.9']} |")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--yolo", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--localizer", type=Path, default=DEFAULT_VERIFIER_WEIGHTS)
    parser.add_argument("--score", type=float, nargs="+", default=[0.4, 0.6],
                        help="operating YOLO score thresholds (0.6: the gun rule's min_score)")  # fmt: skip
    parser.add_argument("--margin", type=float, default=VerifierConfig().margin)
    camera = CameraConfig(id="bench", url="val")
    parser.add_argument("--max-side", type=int, default=camera.max_side,
                        help="ingest's resize before detection (the cameras[].max_side default)")  # fmt: skip
    parser.add_argument("--jpeg-quality", type=int, default=camera.jpeg_quality,
                        help="ingest's JPEG quality (the cameras[] default)")  # fmt: skip
    parser.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    parser.add_argument("--limit", type=int, help="only the first N images (a quick look)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    reexec_tuned(__file__, sys.argv[1:], spin_wait=False, tcmalloc=True)
    if args.threads:
        torch.set_num_threads(args.threads)

    spec = DataSpec.load(args.data)
    dataset = YoloDataset(spec.splits["val"])
    if args.limit:
        dataset.samples = dataset.samples[: args.limit]
    yolo = Checkpoint.load(args.yolo)
    detector = yolo.build(score_thresh=min(args.score)).eval().to(memory_format=torch.channels_last)
    localizer = Checkpoint.load(args.localizer)
    verifier = Verifier.load(args.localizer, device=torch.device("cpu"), margin=args.margin)
    epochs = localizer.training.get("epochs", "?")
    print(f"CPU: {describe_cpu()}; {torch.get_num_threads()} torch threads; torch {torch.__version__}")
    print(f"tcmalloc: {tcmalloc_loaded()}; OMP_WAIT_POLICY: {wait_policy()}")
    print(f"val: {len(dataset)} images of {spec.root} (pistol data: University of Granada), as ingest "
          f"publishes them: max side {args.max_side}, JPEG quality {args.jpeg_quality}")  # fmt: skip
    print(f"detector: {args.yolo.name} ({yolo.name}); verifier: {args.localizer} ({localizer.name}, "
          f"{epochs} epochs), margin {args.margin}")  # fmt: skip

    samples = frames(dataset, max_side=args.max_side, jpeg_quality=args.jpeg_quality)
    targets = [target for _image, target in samples]
    predictions, calls = detect_and_verify(detector, verifier, samples, min(args.score))
    positives = sum(len(t["boxes"]) for t in targets)
    rows = [row for score in args.score for row in table(predictions, targets, score)]
    print_rows(rows, positives)
    overlap = [row for score in args.score for row in by_overlap(predictions, targets, score)]
    print_overlap(overlap)

    crops = sum(count for count, _ in calls)
    per_call = 1000 * sum(seconds for _, seconds in calls) / max(1, len(calls))
    print(f"\nverifier calls: {len(calls)} (one per image with candidates), {crops} crops; "
          f"mean {per_call:.1f} ms per call, {crops / max(1, len(calls)):.2f} crops per call")  # fmt: skip
    image, target = samples[0]
    timed = time_batches(verifier, image, tuple(target["boxes"][0].tolist()))
    print("ms per call of K crops (median of 7): " + ", ".join(f"K={k}: {ms:.1f}" for k, ms in timed.items()))
    if args.json:
        args.json.write_text(json.dumps({
            "split": "val", "images": len(dataset), "pistols": positives, "cpu": describe_cpu(),
            "threads": torch.get_num_threads(), "detector": args.yolo.name, "verifier": str(args.localizer),
            "verifier_epochs": epochs, "margin": args.margin, "max_side": args.max_side,
            "jpeg_quality": args.jpeg_quality, "rows": rows,
            "by_overlap": overlap, "ms_per_call_mean": per_call, "ms_per_call_of_k": timed,
        }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
