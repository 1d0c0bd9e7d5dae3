"""TorchScript and ONNX exports agree with eager PyTorch (ONNX through onnxruntime)."""

from pathlib import Path

import pytest
import torch

from detector.export import export_onnx, export_torchscript
from detector.models.registry import build_model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("yolo_lite0", class_names=("rect", "disc"), input_size=192, pretrained=True).eval()


def test_torchscript_parity(model: torch.nn.Module, tmp_path: Path) -> None:
    parity = export_torchscript(model, tmp_path / "model.ts")
    assert parity.ok(), parity
    assert (tmp_path / "model.ts").stat().st_size > 1_000_000


def test_onnx_parity_with_a_dynamic_batch(model: torch.nn.Module, tmp_path: Path) -> None:
    parity = export_onnx(model, tmp_path / "model.onnx")
    assert parity.ok(), parity
    assert model.training is False, "exporting leaves the model in eval mode"
