"""How a detector holds up when the gun is not upright: mAP on a split turned by 90, 180 and 270
degrees and flipped upside down, against the split as it is.

Guns on camera are held sideways, pointed down, carried upside down; the pistol data set's are
mostly upright, side-on. Each image of the split is turned (``detector.training.datasets``'s
``turn_image``, its boxes by ``turn_boxes``: exact, a quarter turn keeps boxes axis-aligned) or
mirrored top to bottom, written to a temporary folder as JPEG (quality 95; the ``upright`` copy is
re-encoded the same way, so every row pays the same re-encoding), and scored by ``vigil eval``'s
evaluation (COCO mAP, pycocotools) on the engine and precision asked for.

    .venv/bin/python bench/orientations.py
    .venv/bin/python bench/orientations.py --weights detector/weights/pistol-yolo-lite1.pt \\
        runs/pistol-yolo-lite1-rotate/best.pt --engine openvino --precision fp32

Train or val only: the test split is kept for the models' final figures. Pistol data: University of
Granada (DaSCI) weapon-detection data set (Olmos, Tabik & Herrera, 2018), via ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.engines.build import build_detector
from detector.engines.serving import EngineChoice
from detector.runner import DEFAULT_WEIGHTS
from detector.training.datasets import (
    DataSpec,
    YoloDataset,
    list_samples,
    read_labels,
    turn_boxes,
    turn_image,
    write_labels,
)
from detector.training.evaluate import evaluate

PISTOLS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pistols" / "data.yaml"
JPEG_QUALITY = 95


def _turned(turns: int) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    def turn(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = (image.shape[1], image.shape[0])
        return turn_image(image, turns), turn_boxes(boxes, turns, size)

    return turn


def _upside_down(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    height = image.shape[0]
    return image[::-1], np.stack([boxes[:, 0], height - boxes[:, 3], boxes[:, 2], height - boxes[:, 1]], 1)


ORIENTATIONS: dict[str, Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "upright": lambda image, boxes: (image, boxes),
    "turned 90° clockwise": _turned(1),
    "turned 180°": _turned(2),
    "turned 90° anticlockwise": _turned(3),
    "mirrored top to bottom": _upside_down,
}


def write_oriented(split_dir: Path, out: Path, orient: Callable[[np.ndarray, np.ndarray], tuple]) -> Path:
    """Every image of ``split_dir`` (YOLO layout) and its labels, oriented, under ``out``; the image
    folder."""
    images, labels = out / "images", out / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    for image_path, label_path in list_samples(split_dir):
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        boxes, classes = read_labels(label_path, image.shape[1], image.shape[0])
        oriented, moved = orient(image, boxes)
        height, width = oriented.shape[:2]
        cv2.imwrite(str(images / f"{image_path.stem}.jpg"), np.ascontiguousarray(oriented),
                    [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])  # fmt: skip
        write_labels(labels / f"{image_path.stem}.txt", moved, classes, width, height)
    return images


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", nargs="+", default=[str(DEFAULT_WEIGHTS)], help="checkpoints to score")
    parser.add_argument("--data", default=str(PISTOLS), help="data.yaml (YOLO format)")
    parser.add_argument("--split", choices=("train", "val"), default="val")
    parser.add_argument("--engine", default="openvino", help="auto, torch, openvino, onnxruntime")
    parser.add_argument("--precision", default="fp32", help="auto, fp32, int8")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    spec = DataSpec.load(args.data)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="vigil-orientations-") as folder:
        splits = {name: write_oriented(spec.splits[args.split], Path(folder) / str(index), orient)
                  for index, (name, orient) in enumerate(ORIENTATIONS.items())}  # fmt: skip
        for weights in args.weights:
            built = build_detector(EngineChoice(Path(weights), engine=args.engine, precision=args.precision,
                                                device="cpu", rect=True))  # fmt: skip
            built.model.score_thresh = 0.001
            for name, images in splits.items():
                report = evaluate(built.model, YoloDataset(images), built.checkpoint.class_names,
                                  score_thresh=0.6, device=built.device)  # fmt: skip
                summary = report.summary()
                rows.append({"weights": weights, "engine": built.label, "input_size": built.model.input_size,
                             "orientation": name, "map50": summary["map50"], "map50_95": summary["map50_95"],
                             "recall_at_0.6": summary["recall"]})  # fmt: skip
    print(f"{args.split} split ({len(list_samples(spec.splits[args.split]))} images), rectangular letterbox")
    print("| weights | engine | orientation | mAP@0.5 | mAP@0.5:0.95 | recall @0.6 | mAP@0.5 vs upright |")
    print("|---|---|---|---|---|---|---|")
    upright = {row["weights"]: row["map50"] for row in rows if row["orientation"] == "upright"}
    for row in rows:
        print(f"| {Path(str(row['weights'])).name} | {row['engine']} {row['input_size']} "
              f"| {row['orientation']} | {row['map50']:.3f} | {row['map50_95']:.3f} "
              f"| {row['recall_at_0.6']:.3f} "
              f"| {row['map50'] / upright[row['weights']]:.2f}× |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
