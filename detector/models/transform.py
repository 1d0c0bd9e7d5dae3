"""Letterbox, normalise and batch images; map boxes back to each image's own pixels.

Every detector owns one :class:`LetterboxTransform`, so callers never do coordinate arithmetic:
images go in at any size, boxes come out in the input image's pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from detector.models.box_ops import clip_boxes
from detector.postprocess import IMAGENET_MEAN, IMAGENET_STD, PAD_VALUE, ImageMeta, LetterboxGeometry


class LetterboxTransform(nn.Module):
    """Resize each image so its longer side is ``size`` (aspect kept), pad bottom/right to a
    ``size``×``size`` square, normalise, stack.

    With ``rect`` the batch is padded only to a multiple of ``stride`` (the network's largest) on
    each side, the smallest that holds every image of the batch: a 16:9 frame at 384 px is
    384×224, 42 % fewer pixels than the square. Training stays square; inference may be either.

    Images are CHW tensors, ``uint8`` (0–255) or float (0–1), RGB, on any device.
    """

    def __init__(
        self,
        size: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        pad_value: float = PAD_VALUE,
        *,
        rect: bool = False,
        stride: int = 32,
    ) -> None:
        super().__init__()
        self.size = size
        self.pad_value = pad_value
        self.rect = rect
        self.stride = stride
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> tuple[Tensor, list[ImageMeta], list[dict[str, Tensor]] | None]:
        geometry = self.geometry
        sizes = [geometry.resized(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        batch_h, batch_w = geometry.batch_shape(sizes)
        batch = images[0].new_full((len(images), 3, batch_h, batch_w), 0, dtype=self.mean.dtype)
        batch.fill_(self.pad_value)
        metas = []
        for index, (image, (new_h, new_w)) in enumerate(zip(images, sizes, strict=True)):
            height, width = image.shape[-2:]
            scale = self.size / max(height, width)
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

    @property
    def geometry(self) -> LetterboxGeometry:
        """Where each image goes in the batch (shared with the compiled engines' letterbox)."""
        return LetterboxGeometry(self.size, rect=self.rect, stride=self.stride)

    @staticmethod
    def postprocess(results: list[dict[str, Tensor]], metas: list[ImageMeta]) -> list[dict[str, Tensor]]:
        """Boxes from batch pixels back to each input image's pixels, clipped to it."""
        return [
            {**result, "boxes": clip_boxes(result["boxes"] / meta.scale, meta.width, meta.height)}
            for result, meta in zip(results, metas, strict=True)
        ]
