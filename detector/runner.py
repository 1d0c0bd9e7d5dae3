"""The model side of the detector service: frames in, typed detections out.

Knows images and engines, not Redis. Converts at the boundary: model outputs become
:class:`~shared.schemas.Detection` records with boxes in the frame's own pixels.

A compiled engine is served straight from its cache entry, in numpy, and this process never
imports torch (``detector/engines/serving.py``; a first start exports in a child process). Torch
is imported only when it runs the network (``detector/eager_frames.py``): chosen, measured
fastest, on a GPU, or the fallback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from detector.engines.prepare import prepare_in_child
from detector.engines.serving import EngineChoice, Served, serve, worth_preparing
from detector.postprocess import Found
from shared.config import DetectorConfig
from shared.errors import DecodeError
from shared.imaging import decode_rgb, shrink
from shared.schemas import Detection, Frame

log = logging.getLogger(__name__)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "pistol-yolo-lite1.pt"


class FrameModel(Protocol):
    """The network behind the runner: CHW RGB ``uint8`` images in, :data:`Found` per image out. A
    compiled engine's :class:`~detector.engines.compiled.CompiledDetector` is one as it is; torch's
    models are wrapped in ``detector/eager_frames.py``."""

    class_names: tuple[str, ...]
    input_size: int
    score_thresh: float

    def image(self, rgb: np.ndarray) -> Any:
        """An HWC RGB ``uint8`` array as :meth:`predict` takes it (CHW; a tensor on the device)."""

    def predict(self, images: Sequence[Any]) -> list[Found]: ...


@dataclass(frozen=True)
class DecodedFrame:
    frame: Frame
    image: Any
    """CHW uint8 RGB as the runner's model takes it: a numpy array, or a tensor on its device."""
    scale: float
    """Frame pixels per image pixel (> 1 when the frame was decoded or resized smaller)."""


def native_image(item: DecodedFrame, to_image: Callable[[np.ndarray], Any]) -> Any:
    """The frame at its own size (``width``×``height``): the decoded image itself when it has the
    size already (nvJPEG), else the frame decoded again in full and made an image by ``to_image``
    (from HWC RGB ``uint8``; a :meth:`FrameModel.image`). Raises DecodeError for corrupt data."""
    frame = item.frame
    if tuple(item.image.shape[-2:]) == (frame.height, frame.width):
        return item.image
    return to_image(decode_rgb(frame))


def decode_at_scale(frame: Frame, input_size: int) -> np.ndarray:
    """JPEG or raw bytes → HWC RGB ``uint8`` whose longer side is at most ``input_size``. A JPEG much
    larger than that is decoded at 1/2, 1/4 or 1/8 size straight from its DCT coefficients; what is
    still larger is shrunk (:func:`shared.imaging.shrink`; under 2× from a JPEG: bilinear, as the
    model's own letterbox resizes). Done on uint8 and on the reader thread, this spares the
    inference thread the model's own float resize. Raises DecodeError for corrupt data."""
    rgb = decode_rgb(frame, min_side=input_size)
    height, width = rgb.shape[:2]
    scale = input_size / max(height, width)
    if scale < 1:  # at least one pixel each way: a 16384x1 frame is legal, if odd
        size = (max(1, min(input_size, round(width * scale))),
                max(1, min(input_size, round(height * scale))))  # fmt: skip
        rgb = shrink(rgb, size)
    return rgb


class DetectorRunner:
    """Loads a checkpoint on an engine and runs batches of frames through it."""

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
        choice = EngineChoice(path, engine=engine, precision=precision, device=device,
                              cache_dir=Path(engine_cache_dir) if engine_cache_dir else None, rect=rect,
                              threads=torch_threads)  # fmt: skip
        served = serve(choice, nms_iou_thresh=nms_iou_thresh)
        if served is None and worth_preparing(choice):
            problem = prepare_in_child(choice)
            served = serve(choice, nms_iou_thresh=nms_iou_thresh) if problem is None else None
            if problem is not None:
                log.warning("engine %s %s: %s", engine, precision, problem)
        self.model: FrameModel
        if served is not None:
            self._serve_compiled(served, choice)
        else:  # torch runs the network, or builds what failed here and falls back (with the reason)
            from detector.eager_frames import eager_frames

            built, self.model = eager_frames(choice, fallback=fallback, nms_iou_thresh=nms_iou_thresh)
            self.device, self.engine = str(built.device), built.label
            self.engine_precision, self.engine_fallback = (built.engine, built.precision), built.fallback
            self.name = f"{built.checkpoint.name}@{built.checkpoint_sha256[:8]}"
        self.engine_requested = (engine, precision)
        self.model.score_thresh = score_thresh
        self.nms_iou_thresh = nms_iou_thresh
        self.device_decode = self.device.startswith("cuda")
        """Decode each batch's JPEGs together on the model's device (nvJPEG on CUDA)."""
        self.class_names = self.model.class_names
        self.input_size = self.model.input_size
        log.info("model %s on %s, engine %s (%d classes, input %d)", self.name, self.device, self.engine,
                 len(self.class_names), self.input_size)  # fmt: skip

    def _serve_compiled(self, served: Served, choice: EngineChoice) -> None:
        self.model = served.model
        self.device, self.engine = "cpu", f"{served.engine}-{served.precision}"
        """``torch-fp32``, ``openvino-int8``, ...: what runs the network."""
        self.engine_precision, self.engine_fallback = (served.engine, served.precision), served.fallback
        """Why :attr:`engine` is not what was asked for, or None."""
        self.name = f"{served.name}@{served.checkpoint_sha256[:8]}"
        if served.fallback is not None:
            log.warning("engine %s %s: %s; running %s", choice.engine, choice.precision, served.fallback,
                        self.engine)  # fmt: skip

    @classmethod
    def from_config(cls, config: DetectorConfig) -> DetectorRunner:
        return cls(
            config.weights, device=config.device, score_thresh=config.score_thresh,
            nms_iou_thresh=config.nms_iou_thresh, torch_threads=config.torch_threads, engine=config.engine,
            precision=config.precision, engine_cache_dir=config.engine_cache_dir,
            rect=config.letterbox == "rect", fallback=True,
        )  # fmt: skip

    def decode(self, frame: Frame) -> DecodedFrame:
        """The frame as the model takes it, at the model's input scale (:func:`decode_at_scale`);
        boxes are scaled back by ``scale``. Raises DecodeError for corrupt data."""
        image = self.model.image(decode_at_scale(frame, self.input_size))
        return DecodedFrame(frame, image, frame.width / image.shape[-1])

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
        from detector.eager_frames import decode_on_device

        images = decode_on_device(frames, self.device)
        return {
            id(frame): DecodedFrame(frame, images[id(frame)], frame.width / images[id(frame)].shape[-1])
            for frame in frames
            if id(frame) in images
        }

    def detect(self, batch: list[DecodedFrame]) -> tuple[list[list[Detection]], float]:
        """Detections per frame (boxes in frame pixels, no track ids yet) and the inference seconds."""
        started = time.perf_counter()
        results = self.model.predict([item.image for item in batch])
        seconds = time.perf_counter() - started
        return [
            self._to_detections(result, item) for result, item in zip(results, batch, strict=True)
        ], seconds

    def _to_detections(self, result: Found, item: DecodedFrame) -> list[Detection]:
        return to_detections(
            result["boxes"] * item.scale, result["scores"], result["labels"], self.class_names
        )


def to_detections(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
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
            boxes.astype(float).tolist(),
            scores.astype(float).tolist(),
            labels.astype(int).tolist(),
            strict=True,
        )
    ]
