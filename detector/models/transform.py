"""Letterbox, normalise and batch images; map boxes back to each image's own pixels.

Every detector owns one :class:`LetterboxTransform`, so callers never do coordinate arithmetic:
images go in at any size, boxes come out in the input image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detector.boxes import clip_boxes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ImageMeta:
    """How one image was placed in the batch: resized by ``scale`` at the top-left corner."""

    scale: float
    width: int
    height: int


class LetterboxTransform(nn.Module):
    """Resize each image so its longer side is ``size`` (aspect kept), pad bottom/right to a
    ``size``×``size`` square, normalise, stack.

    Images are CHW tensors, ``uint8`` (0–255) or float (0–1), RGB, on any device.
    """

    def __init__(
        self,
        size: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        pad_value: float = 114 / 255,
    ) -> None:
        super().__init__()
        self.size = size
        self.pad_value = pad_value
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> tuple[Tensor, list[ImageMeta], list[dict[str, Tensor]] | None]:
        batch = images[0].new_full((len(images), 3, self.size, self.size), 0, dtype=self.mean.dtype)
        batch.fill_(self.pad_value)
        metas = []
        for index, image in enumerate(images):
            height, width = image.shape[-2:]
            scale = self.size / max(height, width)
            new_h, new_w = min(self.size, round(height * scale)), min(self.size, round(width * scale))
            pixels = image.to(self.mean.dtype)
            if image.dtype == torch.uint8:
                pixels = pixels / 255
            if (new_h, new_w) != (height, width):
                pixels = F.interpolate(
                    pixels[None], size=(new_h, new_w), mode="bilinear", align_corners=False
                )[0]
            batch[index, :, :new_h, :new_w] = pixels
            metas.append(ImageMeta(scale=scale, width=int(width), height=int(height)))
        batch = (batch - self.mean) / self.std
        if targets is not None:
            targets = [
                {**target, "boxes": target["boxes"] * meta.scale}
                for target, meta in zip(targets, metas, strict=True)
            ]
        return batch, metas, targets

    @staticmethod
    def postprocess(results: list[dict[str, Tensor]], metas: list[ImageMeta]) -> list[dict[str, Tensor]]:
        """Boxes from batch pixels back to each input image's pixels, clipped to it."""
        return [
            {**result, "boxes": clip_boxes(result["boxes"] / meta.scale, meta.width, meta.height)}
            for result, meta in zip(results, metas, strict=True)
        ]
