"""Export a YOLO checkpoint's dense network to TorchScript, ONNX and OpenVINO, with a parity check.

What is exported is the network from a letterboxed, normalised batch ``(N, 3, H, W)`` (H and W
multiples of the largest stride: square or rectangular letterbox) to dense ``scores (N, A, C)`` and
``boxes (N, A, 4)`` (xyxy, batch pixels). Letterboxing, score filtering and NMS stay outside
(:func:`detector.postprocess.decode_dense`), as in most deployment toolchains: they have
data-dependent shapes. Each export is checked against eager PyTorch on a batch of another size and
shape than the one it was traced with, so neither is baked in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from detector.models.yolo import YOLO


class DenseYOLO(nn.Module):
    """The exportable part of a :class:`YOLO`: batch → (scores, boxes) for every anchor point."""

    def __init__(self, model: YOLO) -> None:
        super().__init__()
        self.backbone, self.neck, self.head = model.backbone, model.neck, model.head

    def forward(self, batch: Tensor) -> tuple[Tensor, Tensor]:
        output = self.head(self.neck(self.backbone(batch)))
        return output.class_logits.sigmoid(), output.boxes()


@dataclass(frozen=True)
class Parity:
    """Largest absolute differences against eager PyTorch on the same batch."""

    scores: float
    boxes_px: float

    def ok(self, *, scores_tol: float = 1e-4, boxes_tol: float = 1e-2) -> bool:
        return self.scores <= scores_tol and self.boxes_px <= boxes_tol


def _sample_batch(model: YOLO, batch_size: int, seed: int = 0, *, rect: bool = False) -> Tensor:
    """Random uint8 images letterboxed by the model's transform; ``rect``: a 16:9 rectangle."""
    generator = torch.Generator().manual_seed(seed)
    images = [
        torch.randint(0, 256, (3, 270, 480), dtype=torch.uint8, generator=generator)
        for _ in range(batch_size)
    ]
    transform = copy.copy(model.transform)
    transform.rect = rect
    return transform(images)[0]


def _parity(
    reference: tuple[Tensor, Tensor], other: tuple[np.ndarray | Tensor, np.ndarray | Tensor]
) -> Parity:
    scores, boxes = (torch.as_tensor(np.asarray(o)) for o in other)
    return Parity(
        scores=float((scores - reference[0]).abs().max()), boxes_px=float((boxes - reference[1]).abs().max())
    )


def export_torchscript(model: YOLO, path: str | Path) -> Parity:
    dense = DenseYOLO(model).eval()  # a new wrapper is in train mode: that would leak into the reference
    batch = _sample_batch(model, 2)
    with torch.no_grad():
        traced = torch.jit.trace(dense, batch)
        traced.save(str(path))
        loaded = torch.jit.load(str(path))
        other_batch = _sample_batch(model, 3, seed=1)  # another batch size: the trace must not bake it in
        return _parity(dense(other_batch), loaded(other_batch))


def export_onnx(model: YOLO, path: str | Path, *, opset: int = 18) -> Parity:
    """ONNX with dynamic batch, height and width; checked in ONNX Runtime on a rectangular batch."""
    import onnxruntime

    dense = _export_onnx_file(model, path, opset=opset)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    other_batch = _sample_batch(model, 3, seed=1, rect=True)
    with torch.no_grad():
        return _parity(dense(other_batch), session.run(None, {"images": other_batch.numpy()}))


def export_openvino(model: YOLO, path: str | Path) -> Parity:
    """OpenVINO IR (``path`` the ``.xml``; its ``.bin`` beside it), fp32 weights, converted from the
    ONNX export; checked in OpenVINO (fp32 inference) on a rectangular batch."""
    import openvino

    xml = Path(path)
    onnx_path = xml.with_suffix(".onnx")
    dense = _export_onnx_file(model, onnx_path)
    try:
        converted = openvino.convert_model(str(onnx_path))
    finally:
        onnx_path.unlink(missing_ok=True)
    openvino.save_model(converted, str(xml), compress_to_fp16=False)
    compiled = openvino.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    other_batch = _sample_batch(model, 3, seed=1, rect=True)
    outputs = compiled(other_batch.numpy())
    with torch.no_grad():
        return _parity(dense(other_batch), (outputs[0], outputs[1]))


def _export_onnx_file(model: YOLO, path: str | Path, *, opset: int = 18) -> DenseYOLO:
    dense = DenseYOLO(model).eval()  # a new wrapper is in train mode: that would leak into the reference
    batch = _sample_batch(model, 2)
    dense_axes = {0: "batch", 1: "anchors"}
    with torch.no_grad():
        torch.onnx.export(
            dense,
            (batch,),
            str(path),
            input_names=["images"],
            output_names=["scores", "boxes"],
            dynamic_axes={
                "images": {0: "batch", 2: "height", 3: "width"}, "scores": dense_axes, "boxes": dense_axes
            },
            opset_version=opset,
            dynamo=False,
        )
    return dense
