"""Torch running the network behind the runner (:class:`~detector.runner.FrameModel`): eager
PyTorch on the CPU or CUDA (fp16), and nvJPEG decoding of a batch on the GPU. The one module of the
serving path that imports torch; the runner imports it only when torch runs the network."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torchvision.io import ImageReadMode, decode_jpeg

from detector.engines.build import BuiltDetector, build_detector
from detector.engines.serving import EngineChoice
from detector.models.detector import Detector
from detector.postprocess import Found
from shared.schemas import Frame


class EagerFrames:
    """An eager torch detector as the runner's :class:`~detector.runner.FrameModel`: numpy images
    become tensors on its device (half precision on CUDA), its outputs numpy arrays."""

    def __init__(self, model: Detector, device: torch.device, *, half: bool) -> None:
        self.model, self.device, self.half = model, device, half
        self.class_names, self.input_size = model.class_names, model.input_size

    @property
    def score_thresh(self) -> float:
        return self.model.score_thresh

    @score_thresh.setter
    def score_thresh(self, value: float) -> None:
        self.model.score_thresh = value  # type: ignore[misc]

    def image(self, rgb: np.ndarray) -> Tensor:
        return torch.from_numpy(rgb).permute(2, 0, 1).to(self.device, non_blocking=True)

    @torch.inference_mode()
    def predict(self, images: Sequence[Tensor]) -> list[Found]:
        inputs = [image.half() / 255 if self.half else image for image in images]
        results = self.model.predict(inputs)
        return [{key: value.float().cpu().numpy() if key != "labels" else value.cpu().numpy()
                 for key, value in result.items()} for result in results]  # fmt: skip


def eager_frames(
    choice: EngineChoice, *, fallback: bool, nms_iou_thresh: float
) -> tuple[BuiltDetector, EagerFrames]:
    """The checkpoint built for ``choice`` (``detector/engines/build.py``) as a frame model."""
    if choice.threads is not None:
        torch.set_num_threads(choice.threads)
    built = build_detector(choice, fallback=fallback, nms_iou_thresh=nms_iou_thresh)
    return built, EagerFrames(built.model, built.device, half=built.precision == "fp16")


def decode_on_device(frames: Sequence[Frame], device: str) -> dict[int, Tensor]:
    """The JPEG ``frames`` decoded together on ``device`` (nvJPEG on CUDA), by ``id(frame)``; empty
    when the batch call fails (a corrupt JPEG among them): the caller decodes them one by one."""
    if not frames:
        return {}
    data = [torch.from_numpy(np.frombuffer(frame.data, np.uint8).copy()) for frame in frames]
    try:
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=torch.device(device))
    except RuntimeError:
        return {}
    return {id(frame): image for frame, image in zip(frames, images, strict=True)}
