"""COCO-style evaluation of any Vigil detector on a YOLO-format split.

mAP@0.5 and mAP@0.5:0.95 come from pycocotools' own COCOeval (no hand-written AP); precision and
recall at the operating threshold count greedy IoU ≥ 0.5 matches; time per image is split into
preprocess, inference and NMS/decoding.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import Tensor
from torch.utils.data import DataLoader

from detector.models.box_ops import iou_matrix
from detector.models.detector import Detector
from detector.training.datasets import YoloDataset, collate


@dataclass
class EvalReport:
    map50: float
    map50_95: float
    precision: float
    recall: float
    score_thresh: float
    images: int
    ms_per_image: dict[str, float] = field(default_factory=dict)
    pr_curve: dict[str, list[float]] = field(default_factory=dict)
    """recall points → precision at IoU 0.5, per class name."""
    operating_points: list[dict[str, float]] = field(default_factory=list)
    """Precision, recall and F1 at a range of score thresholds: where to set the operating one."""

    def summary(self) -> dict[str, object]:
        report = asdict(self)
        report.pop("pr_curve")
        return report


def coco_map(
    predictions: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]], class_names: Sequence[str]
) -> tuple[float, float, dict[str, list[float]]]:
    """(mAP@0.5, mAP@0.5:0.95, PR curve per class) through pycocotools."""
    images, annotations, detections = [], [], []
    for image_id, (prediction, target) in enumerate(zip(predictions, targets, strict=True)):
        images.append({"id": image_id})
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": int(label),
                "bbox": [box[0], box[1], w, h], "area": w * h, "iscrowd": 0,
            })  # fmt: skip
        for box, score, label in zip(
            prediction["boxes"].tolist(),
            prediction["scores"].tolist(),
            prediction["labels"].tolist(),
            strict=True,
        ):
            detections.append({
                "image_id": image_id, "category_id": int(label),
                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": float(score),
            })  # fmt: skip
    if not detections:
        return 0.0, 0.0, {name: [] for name in class_names}
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = COCO()
        ground_truth.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": i, "name": n} for i, n in enumerate(class_names)],
        }
        ground_truth.createIndex()
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"]  # (iou, recall, class, area, max_dets)
    curves = {name: precision[0, :, k, 0, -1].clip(min=0).tolist() for k, name in enumerate(class_names)}
    return float(evaluator.stats[1]), float(evaluator.stats[0]), curves


def precision_recall_at(
    predictions: Sequence[dict[str, Tensor]], targets: Sequence[dict[str, Tensor]], score_thresh: float
) -> tuple[float, float]:
    """Precision and recall of detections scoring ≥ ``score_thresh``, greedy IoU ≥ 0.5 matching."""
    true_pos = false_pos = positives = 0
    for prediction, target in zip(predictions, targets, strict=True):
        keep = prediction["scores"] >= score_thresh
        boxes, labels = prediction["boxes"][keep], prediction["labels"][keep]
        order = prediction["scores"][keep].argsort(descending=True)
        positives += len(target["boxes"])
        matched = torch.zeros(len(target["boxes"]), dtype=torch.bool)
        ious = iou_matrix(boxes[order], target["boxes"]) if len(target["boxes"]) else None
        for row, label in enumerate(labels[order].tolist()):
            if ious is None:
                false_pos += 1
                continue
            candidates = ious[row].clone()
            candidates[matched | (target["labels"] != label)] = -1
            best = int(candidates.argmax())
            if candidates[best] >= 0.5:
                matched[best] = True
                true_pos += 1
            else:
                false_pos += 1
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 1.0
    recall = true_pos / positives if positives else 1.0
    return precision, recall


@torch.no_grad()
def evaluate(
    model: Detector,
    dataset: YoloDataset,
    class_names: Sequence[str],
    *,
    batch_size: int = 8,
    score_thresh: float = 0.5,
    device: torch.device | str = "cpu",
) -> EvalReport:
    """Run ``model.predict`` over ``dataset`` and score it. The model's own decode threshold
    should be low (e.g. 0.001) for a fair mAP; ``score_thresh`` is the operating point.

    Images go in order of aspect ratio, so those of one letterboxed shape come together: a compiled
    engine builds a model per input shape and keeps a few (``detector/engines/openvino_engine.py``),
    and the val split's 17 rectangular shapes at 512 px in file order rebuilt them over and over
    (the INT8 model then timed slower per image than fp32). The scores do not depend on the order."""
    model.eval()
    sizes = dataset.image_sizes()
    order = sorted(range(len(dataset)), key=lambda index: sizes[index][1] / sizes[index][0])
    loader = DataLoader(dataset, batch_size=batch_size, sampler=order, collate_fn=collate, num_workers=0)
    predictions, targets = [], []
    timings: dict[str, float] = {}
    for images, batch_targets in loader:
        images = [image.to(device) for image in images]
        results = model.predict(images, timings=timings)
        predictions += [{k: v.cpu() for k, v in r.items()} for r in results]
        targets += batch_targets
    map50, map50_95, curves = coco_map(predictions, targets, class_names)
    precision, recall = precision_recall_at(predictions, targets, score_thresh)
    count = len(dataset)
    return EvalReport(
        map50=map50, map50_95=map50_95, precision=precision, recall=recall, score_thresh=score_thresh,
        images=count, ms_per_image={k: 1000 * v / count for k, v in timings.items()}, pr_curve=curves,
        operating_points=operating_points(predictions, targets),
    )  # fmt: skip


OPERATING_THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def operating_points(
    predictions: Sequence[dict[str, Tensor]],
    targets: Sequence[dict[str, Tensor]],
    thresholds: Sequence[float] = OPERATING_THRESHOLDS,
) -> list[dict[str, float]]:
    """Precision, recall and F1 (IoU ≥ 0.5) at each score threshold."""
    points = []
    for threshold in thresholds:
        precision, recall = precision_recall_at(predictions, targets, threshold)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        points.append({"score": threshold, "precision": precision, "recall": recall, "f1": f1})
    return points


def recall_points() -> np.ndarray:
    """The 101 recall thresholds of COCOeval, for plotting ``EvalReport.pr_curve``."""
    return np.linspace(0, 1, 101)


def plot_pr_curve(report: EvalReport, path: str | Path, title: str = "") -> Path:
    """Precision-recall curve(s) at IoU 0.5 as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    for name, precision in report.pr_curve.items():
        if precision:
            axes.plot(recall_points(), precision, label=f"{name} (AP@0.5 {report.map50:.3f})")
    axes.set(
        xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title or "PR curve, IoU 0.5"
    )
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
