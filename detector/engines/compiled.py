"""A YOLO checkpoint run by a compiled engine, behind the :class:`Detector` ``predict`` contract.

The engine runs only the dense network (letterboxed, normalised batch → scores and boxes for every
anchor point, as :class:`detector.export.DenseYOLO` exports it). The letterbox before and the decode
and NMS after are the same PyTorch code the eager model runs (:class:`LetterboxTransform`,
:func:`decode_dense`), so every engine post-processes identically.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor

from detector.models.detector import Detector
from detector.models.timing import StageTimer
from detector.models.transform import LetterboxTransform
from detector.models.yolo import DecodeConfig, DecodedByConfig, decode_dense


class DenseEngine(Protocol):
    """A compiled dense network: ``(N, 3, H, W)`` float32 → scores ``(N, A, C)``, boxes ``(N, A, 4)``."""

    name: str
    """``openvino`` or ``onnxruntime``."""
    precision: str
    """``fp32`` or ``int8``."""
    batched: bool
    """Whether a batch goes to :meth:`infer` whole (padded to its largest image) or image by image."""

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class CompiledYOLO(DecodedByConfig, Detector):
    """Letterbox → engine → shared decode and NMS.

    OpenVINO and ONNX Runtime take one image per call (``batched`` False): on the CPU a batch was no
    cheaper per image than single images (both use every core for one image; ``bench/engines.py``),
    and each image then gets its own rectangular shape instead of the batch's largest.
    """

    loss_names: ClassVar[tuple[str, ...]] = ()
    box_loss_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        engine: DenseEngine,
        transform: LetterboxTransform,
        *,
        class_names: Sequence[str],
        decode: DecodeConfig,
    ) -> None:
        super().__init__(class_names=class_names, input_size=transform.size)
        self.engine, self.transform, self.decode_config = engine, transform, decode

    def _predict(self, images: list[Tensor], timer: StageTimer) -> list[dict[str, Tensor]]:
        results = []
        for chunk in [images] if self.engine.batched else [[image] for image in images]:
            with timer.stage("preprocess"):
                batch, metas, _ = self.transform([image.cpu() for image in chunk])
                array = batch.numpy()
            with timer.stage("inference"):
                scores, boxes = self.engine.infer(array)
            with timer.stage("nms"):
                decoded = decode_dense(torch.from_numpy(scores), torch.from_numpy(boxes), self.decode_config)
                results += self.transform.postprocess(decoded, metas)
        return results
