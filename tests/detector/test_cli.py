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
    assert main(["predict", str(video), "--weights", str(weights), "--out", str(tmp_path / "o")]) == 0
    capture = cv2.VideoCapture(str(tmp_path / "o" / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 12


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
