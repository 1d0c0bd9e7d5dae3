"""The model side of the detector service: frames in, typed detections out.

Knows tensors and devices, not Redis. Converts at the boundary: model dicts become
:class:`~shared.schemas.Detection` records with boxes in the frame's own pixels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_jpeg

from detector.engines.build import EngineChoice, build_detector
from shared.config import DetectorConfig
from shared.errors import DecodeError
from shared.imaging import decode_bgr
from shared.schemas import Detection, Frame

log = logging.getLogger(__name__)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "pistol-yolo-lite0.pt"


@dataclass(frozen=True)
class DecodedFrame:
    frame: Frame
    image: Tensor
    """CHW uint8 RGB on the runner's device."""
    scale: float
    """Frame pixels per image pixel (> 1 when the frame was decoded or resized smaller)."""


def native_image(item: DecodedFrame) -> Tensor:
    """The frame at its own size (``width``×``height``), CHW uint8 RGB on the decoded image's device:
    that image itself when it has the size already (nvJPEG), else the frame decoded again in full.
    Raises DecodeError for corrupt data."""
    frame = item.frame
    if tuple(item.image.shape[-2:]) == (frame.height, frame.width):
        return item.image
    return _rgb_tensor(decode_bgr(frame), item.image.device)


def _rgb_tensor(bgr: np.ndarray, device: torch.device) -> Tensor:
    rgb = torch.from_numpy(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)).permute(2, 0, 1)
    return rgb.to(device, non_blocking=True)


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
        engine: str = "auto",
        precision: str = "auto",
        engine_cache_dir: str | Path | None = None,
        rect: bool = True,
        fallback: bool = False,
    ) -> None:
        """``fallback``: an engine or precision that cannot run falls back to torch (or fp32) with a
        warning, instead of raising (``detector/engines/build.py``); the service's way."""
        path = Path(weights) if weights else DEFAULT_WEIGHTS
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        built = build_detector(
            EngineChoice(path, engine=engine, precision=precision, device=device,
                         cache_dir=Path(engine_cache_dir) if engine_cache_dir else None, rect=rect,
                         threads=torch_threads),
            fallback=fallback, nms_iou_thresh=nms_iou_thresh,
        )  # fmt: skip
        self.checkpoint = built.checkpoint
        self.device = built.device
        self.engine = built.label
        """``torch-fp32``, ``openvino-int8``, ...: what runs the network."""
        self.engine_precision = (built.engine, built.precision)
        self.engine_requested = (engine, precision)
        self.engine_fallback = built.fallback
        """Why :attr:`engine` is not what was asked for, or None."""
        self.model = built.model
        self.model.score_thresh = score_thresh
        self.nms_iou_thresh = nms_iou_thresh
        self.half = built.precision == "fp16"
        self.device_decode = self.device.type == "cuda"
        """Decode each batch's JPEGs together on the model's device (nvJPEG on CUDA)."""
        self.class_names = self.checkpoint.class_names
        self.input_size = self.checkpoint.input_size
        self.name = f"{self.checkpoint.name}@{built.checkpoint_sha256[:8]}"
        log.info("model %s on %s, engine %s (%d classes, input %d)", self.name, self.device, self.engine,
                 len(self.class_names), self.input_size)  # fmt: skip

    @classmethod
    def from_config(cls, config: DetectorConfig) -> DetectorRunner:
        return cls(
            config.weights, device=config.device, score_thresh=config.score_thresh,
            nms_iou_thresh=config.nms_iou_thresh, torch_threads=config.torch_threads, engine=config.engine,
            precision=config.precision, engine_cache_dir=config.engine_cache_dir,
            rect=config.letterbox == "rect", fallback=True,
        )  # fmt: skip

    def decode(self, frame: Frame) -> DecodedFrame:
        """JPEG or raw bytes → RGB tensor at the model's input scale. A JPEG much larger than the
        model input is decoded at 1/2, 1/4 or 1/8 size straight from its DCT coefficients; what is
        still larger is shrunk with area averaging, as the training images were (``build_cache``).
        Done here, on uint8 and on the reader thread, this spares the inference thread the model's
        own float resize; boxes are scaled back by ``scale``. Raises DecodeError for corrupt data."""
        bgr = decode_bgr(frame, min_side=self.input_size)
        height, width = bgr.shape[:2]
        shrink = self.input_size / max(height, width)
        if shrink < 1:  # at least one pixel each way: a 16384x1 frame is legal, if odd
            size = (max(1, min(self.input_size, round(width * shrink))),
                    max(1, min(self.input_size, round(height * shrink))))  # fmt: skip
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        rgb = _rgb_tensor(bgr, self.device)
        return DecodedFrame(frame, rgb, frame.width / rgb.shape[-1])

    def decode_batch(
        self, frames: Sequence[Frame]
    ) -> tuple[list[DecodedFrame], list[tuple[Frame, DecodeError]]]:
        """The frames of one batch decoded (in order) and those that would not decode, with why.

        With ``device_decode`` (on CUDA) the JPEGs go to ``torchvision.io.decode_jpeg`` as one list
        on the device and the model's transform shrinks them there; if the batch call fails (a
        corrupt JPEG among them), or for raw frames and on the CPU, frames are decoded one by one
        with :meth:`decode`.
        """
        jpegs = [frame for frame in frames if frame.codec == "jpeg"]
        on_device = self._decode_on_device(jpegs) if self.device_decode else {}
        decoded: list[DecodedFrame] = []
        failed: list[tuple[Frame, DecodeError]] = []
        for frame in frames:
            try:
                decoded.append(on_device.get(id(frame)) or self.decode(frame))
            except DecodeError as error:
                failed.append((frame, error))
        return decoded, failed

    def _decode_on_device(self, frames: Sequence[Frame]) -> dict[int, DecodedFrame]:
        if not frames:
            return {}
        data = [torch.from_numpy(np.frombuffer(frame.data, np.uint8).copy()) for frame in frames]
        try:
            images = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError as error:
            log.debug("batch JPEG decode failed (%s); decoding one by one", error)
            return {}
        return {
            id(frame): DecodedFrame(frame, image, frame.width / image.shape[-1])
            for frame, image in zip(frames, images, strict=True)
        }

    def model_input(self, image: Tensor) -> Tensor:
        """A CHW uint8 image as the model takes it (0-1 fp16 when it runs in half precision)."""
        return image.half() / 255 if self.half else image

    @torch.inference_mode()
    def detect(self, batch: list[DecodedFrame]) -> tuple[list[list[Detection]], float]:
        """Detections per frame (boxes in frame pixels, no track ids yet) and the inference seconds."""
        started = time.perf_counter()
        results = self.model.predict([self.model_input(item.image) for item in batch])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - started
        return [
            self._to_detections(result, item) for result, item in zip(results, batch, strict=True)
        ], seconds

    def _to_detections(self, result: dict[str, Tensor], item: DecodedFrame) -> list[Detection]:
        return to_detections(result["boxes"].float() * item.scale, result["scores"], result["labels"],
                             self.class_names)  # fmt: skip


def to_detections(
    boxes: Tensor, scores: Tensor, labels: Tensor, class_names: Sequence[str]
) -> list[Detection]:
    """Typed detections of (K, 4) xyxy frame-pixel ``boxes`` and their ``scores`` and class ``labels``."""
    return [
        Detection(
            label=class_names[label],
            class_id=label,
            score=round(score, 4),
            box=tuple(round(v, 1) for v in box),
        )
        for box, score, label in zip(
            boxes.float().cpu().tolist(), scores.float().cpu().tolist(), labels.cpu().tolist(), strict=True
        )
    ]
