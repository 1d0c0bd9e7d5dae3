"""The trainer: multi-scale sides, and a resumed run that repeats the uninterrupted one exactly
(model, EMA, optimizer, every random draw), with the composite recipe and a loader worker."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from detector.models.checkpoint import Checkpoint
from detector.training.composite import CompositeConfig
from detector.training.train import TrainConfig, Trainer, multi_scale_sides
from vigil.cli import main


def test_multi_scale_sides_are_multiples_of_32_in_the_range() -> None:
    assert multi_scale_sides(448, (0.75, 1.25)) == [352, 384, 416, 448, 480, 512, 544]
    assert multi_scale_sides(384, None) == [384]
    with pytest.raises(ValueError, match="no multiple of 32"):
        multi_scale_sides(64, (0.9, 0.95))


def test_rotate_is_refused_for_the_crop_classifiers(red_boxes: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not for the crop classifier"):
        Trainer(TrainConfig(data=str(red_boxes), model="localizer_lite0", input_size=64, rotate=0.5,
                            out_dir=str(tmp_path), cache_dir=str(tmp_path / "c"), device="cpu"))  # fmt: skip


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_repeats_the_uninterrupted_run(red_boxes: Path, tmp_path: Path) -> None:
    config = TrainConfig(
        data=str(red_boxes), model="yolo_lite0", input_size=64, epochs=2, batch_size=2, workers=1,
        out_dir=str(tmp_path / "straight"), cache_dir=str(tmp_path / "cache"), device="cpu",
        composite=CompositeConfig(), multi_scale=(0.5, 1.5), ema_decay=0.9, close_mosaic=1,
    )  # fmt: skip
    straight = Trainer(config)
    straight.fit()

    interrupted = replace(config, out_dir=str(tmp_path / "interrupted"))
    first = Trainer(interrupted)
    first.fit(until_epoch=1)
    assert first.train_set.config == config.composite
    resumed = Trainer(interrupted)
    assert resumed.resume() and resumed.epoch == 1
    resumed.fit()
    assert (resumed.train_set.config.mosaic, resumed.train_set.config.negative_share) == (0.0, 0.1)
    assert resumed.model.transform.size == 64

    assert same_tensors(resumed.model.state_dict(), straight.model.state_dict())
    assert same_tensors(resumed.ema.model.state_dict(), straight.ema.model.state_dict())
    assert not same_tensors(resumed.ema.model.state_dict(), resumed.model.state_dict())
    assert resumed.ema.updates == straight.ema.updates == 6
    drop_time = [{k: v for k, v in row.items() if k != "train_seconds"} for row in straight.history]
    assert [{k: v for k, v in row.items() if k != "train_seconds"} for row in resumed.history] == drop_time
    saved = Checkpoint.load(tmp_path / "interrupted" / "last.pt")  # the EMA weights, in fp16
    ema = resumed.ema.model.state_dict()
    assert saved.training["epochs"] == 2
    assert all(
        torch.equal(v, ema[k].half() if v.is_floating_point() else ema[k])
        for k, v in saved.state_dict.items()
    )
    assert not (tmp_path / "interrupted" / "state.tmp").exists()


@pytest.mark.slow
def test_vigil_train_with_the_small_object_recipe(red_boxes: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main([
        "train", "--data", str(red_boxes), "--model", "yolo_lite1", "--img", "64", "--epochs", "2",
        "--batch", "3", "--workers", "0", "--mosaic", "0.5", "--copy-paste", "0.4", "--zoom-out", "0.2",
        "--multi-scale", "0.5", "1.5", "--close-mosaic", "1", "--warmup-epochs", "0.5", "--ema-decay", "0.99",
        "--rotate", "0.5", "--out", str(out), "--cache", str(tmp_path / "cache"),
    ]) == 0  # fmt: skip
    training = Checkpoint.load(out / "last.pt").training
    config = training["config"]
    assert training["epochs"] == 2 and config["model"] == "yolo_lite1"
    composite = config["composite"]
    assert (composite["mosaic"], composite["copy_paste"], composite["zoom_out"]) == (0.5, 0.4, 0.2)
    assert (list(config["multi_scale"]), config["close_mosaic"], config["ema_decay"]) == ([0.5, 1.5], 1, 0.99)
    assert config["rotate"] == 0.5

    tuned = Trainer(TrainConfig(
        data=str(red_boxes), model="yolo_lite1", input_size=64, epochs=1, batch_size=3, workers=0,
        device="cpu", out_dir=str(tmp_path / "tuned"), cache_dir=str(tmp_path / "cache"),
        finetune=str(out / "last.pt"),
    ))  # fmt: skip
    trained = Checkpoint.load(out / "last.pt").state_dict
    assert tuned.epoch == 0 and tuned.history == []
    assert same_tensors(tuned.model.state_dict(), {k: v.float() if v.is_floating_point() else v
                                                   for k, v in trained.items()})  # fmt: skip
    assert same_tensors(tuned.ema.model.state_dict(), tuned.model.state_dict())
    with pytest.raises(ValueError, match="not a checkpoint of this model recipe"):
        Trainer(TrainConfig(
            data=str(red_boxes), model="yolo_lite0", input_size=64, epochs=1, batch_size=3, workers=0,
            device="cpu", out_dir=str(tmp_path / "other"), cache_dir=str(tmp_path / "cache"),
            finetune=str(out / "last.pt"),
        ))  # fmt: skip
