"""Checkpoint: one file, weights_only loading, round trip, clear errors."""

from pathlib import Path

import pytest
import torch

from detector.models.box_ops import iou_matrix
from detector.models.checkpoint import Checkpoint, CheckpointError, reuse_localizer
from detector.models.registry import build_model
from detector.runner import DEFAULT_WEIGHTS
from detector.training.datasets import YoloDataset
from detector.verifier import DEFAULT_VERIFIER_WEIGHTS
from tests.support.data import data_dir


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = build_model("yolo_lite0", class_names=("pistol",), input_size=128, pretrained=False)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    Checkpoint.from_model(model, "yolo_lite0", training={"epochs": 3, "val": {"map50": 0.5}}).save(path)
    return path, model


def test_round_trip_gives_the_same_detections(checkpoint: tuple[Path, torch.nn.Module]) -> None:
    path, original = checkpoint
    loaded = Checkpoint.load(path)
    assert (loaded.arch, loaded.class_names, loaded.input_size) == ("yolo", ("pistol",), 128)
    assert loaded.builder == {"backbone": "efficientnet_lite0"}
    assert loaded.training["epochs"] == 3
    assert all(v.dtype != torch.float32 for v in loaded.state_dict.values()), "stored as fp16"
    model = loaded.build(score_thresh=0.0)
    original.decode_config = model.decode_config
    image = [torch.rand(3, 100, 140)]
    # fp16 storage: same boxes to within fp16 rounding of the weights
    expected, got = original.predict(image)[0], model.predict(image)[0]
    assert torch.allclose(expected["scores"][:20], got["scores"][:20], atol=2e-2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda good: good[: len(good) // 2], "not a readable checkpoint"),
        (lambda good: b"\x00garbage" * 100, "not a readable checkpoint"),
        (lambda good: b"", "not a readable checkpoint"),
    ],
)
def test_corrupt_files_raise_a_clear_error(checkpoint, tmp_path: Path, content, message: str) -> None:
    path, _ = checkpoint
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content(path.read_bytes()))
    with pytest.raises(CheckpointError, match=message):
        Checkpoint.load(bad)


def test_foreign_and_mismatched_files(checkpoint, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(CheckpointError, match="not a Vigil detector checkpoint"):
        Checkpoint.load(foreign)
    loaded = Checkpoint.load(checkpoint[0])
    loaded.class_names = ("pistol", "knife")  # the head was trained for one class
    with pytest.raises(CheckpointError, match="weights do not fit"):
        loaded.build()


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "vigil-detector", "payload": Evil()}, path)
    with pytest.raises(CheckpointError):
        Checkpoint.load(path)


def test_the_shipped_weights_load_unchanged() -> None:
    checkpoint = Checkpoint.load(DEFAULT_WEIGHTS)
    model = checkpoint.build()  # strict: every tensor of the file fits, none is missing
    assert set(model.state_dict()) == set(checkpoint.state_dict)
    assert (model.class_names, model.input_size) == (checkpoint.class_names, checkpoint.input_size)
    assert model.class_names == ("pistol",)


def test_the_shipped_localizer_finds_pistols_as_rcnn() -> None:
    """The shipped localization model (also the alert verifier), reused as R-CNN on 200 selective-
    search proposals: its best box hits the pistol (IoU > 0.5) in val images of three sizes
    (University of Granada data)."""
    shipped = Checkpoint.load(DEFAULT_VERIFIER_WEIGHTS)
    rcnn = reuse_localizer(shipped, "rcnn_lite0", proposals=200).build(score_thresh=0.5)
    val = YoloDataset(data_dir() / "pistols" / "images" / "val")
    for index in (0, 12, 24):  # 263×192, 1080×720, 585×390
        image, target = val[index]
        found = rcnn.predict([image])[0]
        assert len(found["boxes"]), index
        assert iou_matrix(found["boxes"][:1], target["boxes"]).max() > 0.5, index
