"""Export a YOLO checkpoint's dense network to TorchScript and ONNX, with a parity check.

What is exported is the network from a letterboxed, normalised batch ``(N, 3, S, S)`` to dense
``scores (N, A, C)`` and ``boxes (N, A, 4)`` (xyxy, batch pixels). Letterboxing, score filtering
and NMS stay outside (``torchvision.ops.batched_nms`` or the runtime's own), as in most
deployment toolchains: they have data-dependent shapes.
"""

from __future__ import annotations

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


def _sample_batch(model: YOLO, batch_size: int, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    images = [
        torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8, generator=generator)
        for _ in range(batch_size)
    ]
    return model.transform(images)[0]


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
    import onnxruntime

    dense = DenseYOLO(model).eval()  # a new wrapper is in train mode: that would leak into the reference
    batch = _sample_batch(model, 2)
    with torch.no_grad():
        torch.onnx.export(
            dense,
            (batch,),
            str(path),
            input_names=["images"],
            output_names=["scores", "boxes"],
            dynamic_axes={"images": {0: "batch"}, "scores": {0: "batch"}, "boxes": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        other_batch = _sample_batch(model, 3, seed=1)
        return _parity(dense(other_batch), session.run(None, {"images": other_batch.numpy()}))
