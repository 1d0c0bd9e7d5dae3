"""The one interface every Vigil detector has: :class:`Detector`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor, nn

from detector.models.timing import StageTimer


class Detector(nn.Module, ABC):
    """An object detector behind Vigil's contract.

    * input: a list of CHW RGB images, ``uint8`` (0–255) or float (0–1), of any sizes, on the
      model's device; the detector's own transform resizes, normalises and batches them;
    * train mode, ``model(images, targets)`` with targets ``[{"boxes": (G, 4) xyxy in that image's
      pixels, "labels": (G,) int64, 0-based}]``: a dict of named losses, one per name in
      :attr:`loss_names`; those in :attr:`box_loss_names` measure the boxes, and are exactly 0 for
      an image without objects;
    * :meth:`predict` (eval mode, no grad): one ``{"boxes": (K, 4) xyxy in the input image's
      pixels, "scores": (K,), "labels": (K,) 0-based indices into class_names}`` per image.

    ``class_names`` and ``input_size`` (the side images are resized to) are set by the builder.
    The class adds no parameters or buffers: a subclass's state dict is that of its parts.
    """

    loss_names: ClassVar[tuple[str, ...]]
    box_loss_names: ClassVar[tuple[str, ...]]

    def __init__(self, *, class_names: Sequence[str], input_size: int) -> None:
        super().__init__()
        self.class_names: tuple[str, ...] = tuple(class_names)
        self.input_size = input_size

    @property
    @abstractmethod
    def score_thresh(self) -> float:
        """Detections scoring below this are dropped before NMS; settable."""

    @torch.no_grad()
    def predict(
        self, images: Sequence[Tensor], *, timings: dict[str, float] | None = None
    ) -> list[dict[str, Tensor]]:
        """Detections per image (see the class docstring), in eval mode.

        Adds the seconds of each stage (``preprocess``, ``inference``, ``nms``) to ``timings``.
        Raises ValueError unless ``images`` is a non-empty list of 3-channel CHW tensors.
        """
        check_images(images)
        if self.training:
            self.eval()
        return self._predict(list(images), StageTimer(timings, images[0].device))

    @abstractmethod
    def _predict(self, images: list[Tensor], timer: StageTimer) -> list[dict[str, Tensor]]:
        """:meth:`predict` after its checks: each stage timed with ``timer.stage(name)``."""


def check_images(images: Sequence[Tensor]) -> None:
    """Raise ValueError unless ``images`` is a non-empty list (or tuple) of CHW RGB tensors."""
    if isinstance(images, Tensor):
        raise ValueError(
            f"images must be a list of CHW tensors, not one tensor of shape {tuple(images.shape)}"
        )
    if not isinstance(images, list | tuple) or not images:
        raise ValueError(f"images must be a non-empty list of CHW tensors, got {images!r:.80}")
    for index, image in enumerate(images):
        if not isinstance(image, Tensor):
            raise ValueError(f"images[{index}] is a {type(image).__name__}, not a tensor")
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"images[{index}] has shape {tuple(image.shape)}; expected (3, H, W) RGB")
        if image.shape[1] == 0 or image.shape[2] == 0:
            raise ValueError(f"images[{index}] has shape {tuple(image.shape)}: no pixels")
        if image.dtype != torch.uint8 and not image.is_floating_point():
            raise ValueError(f"images[{index}] is {image.dtype}; expected uint8 (0-255) or float (0-1)")
