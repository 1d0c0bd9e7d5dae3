"""`vigil train / eval / predict / export / models` end to end on a tiny YOLO-format data set."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from tests.detector.synthetic import synthetic_batch
from vigil.cli import main


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic rectangles/discs written as a YOLO data set (train = val = test)."""
    root = tmp_path_factory.mktemp("tiny")
    images, targets = synthetic_batch(6, 160, seed=3)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for index, (image, target) in enumerate(zip(images, targets, strict=True)):
            bgr = cv2.cvtColor(image.permute(1, 2, 0).numpy(), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(root / "images" / split / f"{index}.png"), bgr)
            lines = []
            for (x1, y1, x2, y2), label in zip(
                target["boxes"].tolist(), target["labels"].tolist(), strict=True
            ):
                lines.append(
                    f"{label} {(x1 + x2) / 320} {(y1 + y2) / 320} {(x2 - x1) / 160} {(y2 - y1) / 160}"
                )
            (root / "labels" / split / f"{index}.txt").write_text("\n".join(lines) + "\n")
    data = root / "data.yaml"
    spec = {
        "path": ".",
        "train": "images/train",
        "val": "images/val",
        "test": "images/val",
        "names": ["rect", "disc"],
    }
    data.write_text(yaml.safe_dump(spec))
    return data


def test_train_resume_eval_predict_export(
    tiny_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    common = [
        "train",
        "--data",
        str(tiny_dataset),
        "--img",
        "160",
        "--batch",
        "3",
        "--workers",
        "0",
        "--out",
        str(out),
    ]
    assert main([*common, "--epochs", "1"]) == 0
    assert main([*common, "--epochs", "2", "--resume"]) == 0
    (out / "state.pt").unlink()  # another machine: only the checkpoint and the metrics travel
    assert main([*common, "--epochs", "3", "--resume", "--init", str(out / "last.pt")]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3], "resumed at epoch 2, then warm-started at 3"
    assert (out / "curves.png").stat().st_size > 0 and (out / "best.pt").exists()

    capsys.readouterr()
    plot = tmp_path / "pr.png"
    assert main(["eval", "--weights", str(out / "last.pt"), "--data", str(tiny_dataset), "--split", "val",
                 "--plot", str(plot)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    report = json.loads(printed[: printed.rindex("}") + 1])
    assert {"map50", "map50_95", "precision", "recall", "ms_per_image"} <= set(report)
    assert set(report["ms_per_image"]) == {"preprocess", "inference", "nms"}
    assert plot.stat().st_size > 0

    annotated = tmp_path / "annotated"
    assert main(["predict", str(tiny_dataset.parent / "images" / "val"), "--weights", str(out / "last.pt"),
                 "--out", str(annotated), "--score-thresh", "0.0"]) == 0  # fmt: skip
    outputs = sorted(annotated.glob("*.jpg"))
    assert len(outputs) == 6
    drawn = cv2.imread(str(outputs[0]))
    source = cv2.imread(str(tiny_dataset.parent / "images" / "val" / "0.png"))
    assert drawn.shape == source.shape and np.abs(drawn.astype(int) - source).max() > 100, "boxes are drawn"

    assert (
        main(
            [
                "export",
                "--weights",
                str(out / "last.pt"),
                "--format",
                "onnx",
                "--out",
                str(tmp_path / "m.onnx"),
            ]
        )
        == 0
    )


def test_predict_on_a_video(tiny_dataset: Path, tmp_path: Path) -> None:
    from detector.models.checkpoint import Checkpoint
    from detector.models.registry import build_model

    model = build_model("yolo_lite0", class_names=("pistol",), input_size=128, pretrained=False)
    weights = Checkpoint.from_model(model, "yolo_lite0").save(tmp_path / "w.pt")
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for index in range(12):
        writer.write(np.full((120, 160, 3), index * 10, np.uint8))
    writer.release()
    out = tmp_path / "o"
    assert main(["predict", str(video), "--weights", str(weights), "--out", str(out), "--json", "--labels",
                 "--score-thresh", "0.0"]) == 0  # fmt: skip
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    # one JSON and one label file per frame, beside the video
    assert sorted(p.name for p in (out / "clip").glob("*.json")) == [f"{i:06d}.json" for i in range(12)]
    assert sorted(p.name for p in (out / "clip").glob("*.txt")) == [f"{i:06d}.txt" for i in range(12)]
    for index in range(12):
        frame = json.loads((out / "clip" / f"{index:06d}.json").read_text())
        assert (frame["source"], frame["frame"]) == ("clip.mp4", index)
        assert (frame["width"], frame["height"]) == (160, 120)
        assert_labels_match(frame, (out / "clip" / f"{index:06d}.txt").read_text())


def assert_labels_match(result: dict, labels: str) -> None:
    """The YOLO lines say what the JSON says: class cx cy w h score, normalised by the image size."""
    lines = [line.split() for line in labels.splitlines()]
    assert len(lines) == len(result["detections"])
    for line, detection in zip(lines, result["detections"], strict=True):
        x1, y1, x2, y2 = detection["box"]
        assert 0 <= x1 <= x2 <= result["width"] and 0 <= y1 <= y2 <= result["height"]
        expected = [(x1 + x2) / 2 / result["width"], (y1 + y2) / 2 / result["height"],
                    (x2 - x1) / result["width"], (y2 - y1) / result["height"]]  # fmt: skip
        assert int(line[0]) == detection["class_id"]
        assert [float(v) for v in line[1:5]] == pytest.approx(expected, abs=1e-4)
        assert float(line[5]) == pytest.approx(detection["score"], abs=1e-4)


def test_predict_with_the_shipped_model_writes_json_and_labels_in_image_pixels(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """No --weights: the shipped pistol detector. On frames of the bundled clip (640x480, not the
    model's 384 input) its boxes land on the clip's ground truth, so they are in the image's pixels."""
    root = Path(__file__).resolve().parents[2]
    truth = json.loads((root / "samples" / "pistols.json").read_text())
    capture = cv2.VideoCapture(str(root / "samples" / "pistols.mp4"))
    images = tmp_path / "frames"
    images.mkdir()
    wanted = {12: truth["images"][0]["boxes"][12], 162: truth["images"][6]["boxes"][12]}
    assert truth["images"][6]["frame_start"] == 150
    for index in range(163):
        ok, frame = capture.read()
        assert ok
        if index in wanted:
            cv2.imwrite(str(images / f"frame.{index}.png"), frame)  # a dot in the name, like the data set's
    capture.release()

    out = tmp_path / "out"
    assert main(["predict", str(images), "--out", str(out), "--json", "--labels", "--device", "cpu"]) == 0
    assert "with json and labels results" in capsys.readouterr().out
    for index, boxes in wanted.items():
        assert (out / f"frame.{index}.jpg").is_file()
        result = json.loads((out / f"frame.{index}.json").read_text())
        assert (result["source"], result["frame"], result["width"], result["height"]) == (
            f"frame.{index}.png", None, 640, 480)  # fmt: skip
        assert result["detections"] and {d["label"] for d in result["detections"]} == {"pistol"}
        assert all(d["score"] >= 0.4 for d in result["detections"]), "the default --score-thresh"
        assert_labels_match(result, (out / f"frame.{index}.txt").read_text())
        best = max(box_iou(d["box"], box) for d in result["detections"] for box in boxes)
        assert best >= 0.5, f"frame {index}: no detection on a ground-truth pistol (best IoU {best:.2f})"


def box_iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def test_models_table(capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    table = capsys.readouterr().out
    assert "efficientnet_b7" in table and "2.0  3.1   600" in table and "frcnn_lite0" in table


def test_a_corrupt_or_missing_checkpoint_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    assert main(["predict", str(tmp_path), "--weights", str(corrupt), "--out", str(tmp_path / "o")]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert main(["eval", "--weights", str(tmp_path / "missing.pt"), "--data", "x.yaml"]) == 2
    assert "file not found" in capsys.readouterr().err
