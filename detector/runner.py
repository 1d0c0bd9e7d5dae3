"""The model side of the detector service: frames in, typed detections out.

Knows tensors and devices, not Redis. Converts at the boundary: model dicts become
:class:`~shared.schemas.Detection` records with boxes in the frame's own pixels.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from detector.device import pick_device
from detector.models.registry import Checkpoint, file_sha256
from shared.errors import DecodeError
from shared.schemas import Detection, Frame

log = logging.getLogger(__name__)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "pistol-yolo-lite0.pt"
_REDUCED = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


@dataclass(frozen=True)
class DecodedFrame:
    frame: Frame
    image: Tensor
    """CHW uint8 RGB on the runner's device."""
    scale: float
    """Frame pixels per image pixel (> 1 when the JPEG was decoded at reduced size)."""


class DetectorRunner:
    """Loads a checkpoint on a device and runs batches of frames through it."""

    def __init__(
        self,
        weights: str | Path | None = None,
        *,
        device: str = "auto",
        score_thresh: float = 0.25,
        nms_iou_thresh: float = 0.6,
        torch_threads: int | None = None,
    ) -> None:
        path = Path(weights) if weights else DEFAULT_WEIGHTS
        self.checkpoint = Checkpoint.load(path)
        self.device = pick_device(device)
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        self.model = self.checkpoint.build(nms_iou_thresh=nms_iou_thresh).to(self.device).eval()
        self.model.score_thresh = score_thresh
        # channels-last convolutions: 1.3-2.5x faster for the depthwise-heavy backbones on CPU
        # (bench/models.py), and what tensor cores want on CUDA
        self.model.to(memory_format=torch.channels_last)
        self.half = self.device.type == "cuda"
        if self.half:
            self.model.half()
        self.class_names = self.checkpoint.class_names
        self.input_size = self.checkpoint.input_size
        self.name = f"{self.checkpoint.name}@{file_sha256(path)[:8]}"
        log.info("model %s on %s (%d classes, input %d)", self.name, self.device, len(self.class_names),
                 self.input_size)  # fmt: skip

    def decode(self, frame: Frame) -> DecodedFrame:
        """JPEG or raw bytes → RGB tensor. A JPEG much larger than the model input is decoded at
        1/2, 1/4 or 1/8 size straight from its DCT coefficients (cheaper, same result after the
        model's own downscale); boxes are scaled back. Raises DecodeError for corrupt data."""
        if frame.codec == "raw":
            if len(frame.data) != frame.width * frame.height * 3:
                raise DecodeError("raw frame of the wrong size")
            bgr = np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3)
            factor = 1
        else:
            factor, flag = next(
                ((f, flag) for f, flag in _REDUCED if max(frame.width, frame.height) / f >= self.input_size),
                (1, cv2.IMREAD_COLOR),
            )
            bgr = cv2.imdecode(np.frombuffer(frame.data, np.uint8), flag)
            if bgr is None:
                raise DecodeError("corrupt JPEG")
        rgb = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1)
        scale = frame.width / rgb.shape[-1] if factor > 1 else 1.0
        return DecodedFrame(frame, rgb.to(self.device, non_blocking=True), scale)

    @torch.inference_mode()
    def detect(self, batch: list[DecodedFrame]) -> tuple[list[list[Detection]], float]:
        """Detections per frame (boxes in frame pixels, no track ids yet) and the inference seconds."""
        started = time.perf_counter()
        images = [item.image.half() / 255 if self.half else item.image for item in batch]
        results = self.model.predict(images)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - started
        return [
            self._to_detections(result, item) for result, item in zip(results, batch, strict=True)
        ], seconds

    def _to_detections(self, result: dict[str, Tensor], item: DecodedFrame) -> list[Detection]:
        boxes = (result["boxes"].float() * item.scale).cpu().tolist()
        scores = result["scores"].float().cpu().tolist()
        labels = result["labels"].cpu().tolist()
        return [
            Detection(
                label=self.class_names[label],
                class_id=label,
                score=round(score, 4),
                box=tuple(round(v, 1) for v in box),
            )
            for box, score, label in zip(boxes, scores, labels, strict=True)
        ]
