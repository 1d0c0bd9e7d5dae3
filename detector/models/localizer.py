"""Object localization: "is it a gun, and where?" for one image or one region of it.

The lecture's first detector: a classifier with a second, regression output. An EfficientNet
backbone sees the region warped to ``input_size``², its C5 features are pooled, and two linear
outputs give, per class, the logit of "this region shows one" and the object's box
``(cx, cy, w, h)`` as fractions of the region (class-agnostic; a box may reach past the region,
so the outputs are not squashed). The loss is ``α·BCE(class logits) + β·smooth-L1(box)``, the
box term over positive regions only (exactly 0 without objects); smooth L1 with a small
``beta`` behaves as L2 near the target and as L1 on outliers.

:class:`Localizer` is a :class:`~detector.models.detector.Detector` over whole images (one box per
image at most: localization, not detection). :meth:`Localizer.score_regions` is what the sliding
window, R-CNN and the alert verifier run on many regions of one frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

from detector.models.backbones import Backbone, build_backbone
from detector.models.detector import Detector
from detector.models.timing import StageTimer
from detector.models.transform import IMAGENET_MEAN, IMAGENET_STD


@dataclass(frozen=True)
class LocalizationLoss:
    """``alpha·BCE + beta·smooth-L1``; the box term is the mean over positive regions."""

    alpha: float = 1.0
    beta: float = 5.0
    smooth_l1_beta: float = 0.05

    def __call__(
        self,
        class_logits: Tensor,
        boxes: Tensor,
        class_targets: Tensor,
        box_targets: Tensor,
        positive: Tensor,
    ) -> dict[str, Tensor]:
        classification = F.binary_cross_entropy_with_logits(class_logits, class_targets)
        if positive.any():
            box = F.smooth_l1_loss(boxes[positive], box_targets[positive], beta=self.smooth_l1_beta)
        else:
            box = boxes.sum() * 0.0  # keeps the graph; exactly zero
        return {"classification": self.alpha * classification, "box": self.beta * box}


class Normalise(nn.Module):
    """One CHW RGB image, ``uint8`` or float 0–1 → float, ImageNet-normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)

    def forward(self, image: Tensor) -> Tensor:
        pixels = image.to(self.mean.dtype)
        if image.dtype == torch.uint8:
            pixels = pixels / 255
        return (pixels - self.mean) / self.std


def warp_regions(image: Tensor, regions: Tensor, size: int) -> Tensor:
    """Each ``xyxy`` region of one normalised CHW image warped (aspect not kept, as R-CNN warps
    its proposals) to ``size``×``size``: ``(K, 3, size, size)``, one batched RoIAlign whose
    adaptive sampling averages over each output pixel's footprint, like an area resize."""
    return roi_align(
        image[None], [regions.to(image.dtype)], output_size=size, sampling_ratio=-1, aligned=True
    )


def regions_to_boxes(relative: Tensor, regions: Tensor) -> Tensor:
    """``(cx, cy, w, h)`` fractions of each region → ``xyxy`` pixels."""
    origin, extent = regions[:, :2], regions[:, 2:] - regions[:, :2]
    centre = origin + relative[:, :2] * extent
    half = relative[:, 2:].clamp(min=0) * extent / 2
    return torch.cat([centre - half, centre + half], dim=1)


def boxes_to_regions(boxes: Tensor, regions: Tensor) -> Tensor:
    """Inverse of :func:`regions_to_boxes`: ``xyxy`` pixels → fractions of each region."""
    origin, extent = regions[:, :2], (regions[:, 2:] - regions[:, :2]).clamp(min=1e-6)
    centre = ((boxes[:, :2] + boxes[:, 2:]) / 2 - origin) / extent
    return torch.cat([centre, (boxes[:, 2:] - boxes[:, :2]) / extent], dim=1)


class Localizer(Detector):
    """Backbone → global average pool of C5 → a hidden layer → class logits and a box."""

    loss_names = ("classification", "box")
    box_loss_names = ("box",)

    def __init__(
        self,
        backbone: Backbone,
        *,
        class_names: Sequence[str],
        input_size: int,
        hidden: int = 256,
        loss: LocalizationLoss = LocalizationLoss(),
        score_thresh: float = 0.5,
    ) -> None:
        super().__init__(class_names=class_names, input_size=input_size)
        self.backbone = backbone
        self.hidden = nn.Sequential(
            nn.Linear(backbone.out_channels[-1], hidden), nn.SiLU(inplace=True), nn.Dropout(0.2)
        )
        self.class_out = nn.Linear(hidden, len(self.class_names))
        self.box_out = nn.Linear(hidden, 4)
        nn.init.normal_(self.box_out.weight, std=0.01)
        with torch.no_grad():
            self.box_out.bias.copy_(torch.tensor([0.5, 0.5, 0.7, 0.7]))
        self.loss = loss
        self._score_thresh = score_thresh
        self.normalise = Normalise()

    @property
    def score_thresh(self) -> float:
        return self._score_thresh

    @score_thresh.setter
    def score_thresh(self, value: float) -> None:
        self._score_thresh = value

    def score_regions(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """Warped, normalised crops ``(K, 3, S, S)`` → class logits ``(K, C)`` and boxes ``(K, 4)``
        as ``(cx, cy, w, h)`` fractions of each crop."""
        features = self.backbone(crops)[-1].mean(dim=(2, 3))
        hidden = self.hidden(features)
        return self.class_out(hidden), self.box_out(hidden)

    def whole_images(self, images: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Each image as one region: the ``(N, 3, S, S)`` batch and the regions ``(N, 4)``."""
        regions = [
            image.new_tensor([0, 0, image.shape[-1], image.shape[-2]], dtype=torch.float32)
            for image in images
        ]
        crops = [
            warp_regions(self.normalise(image), region[None], self.input_size)
            for image, region in zip(images, regions, strict=True)
        ]
        return torch.cat(crops), torch.stack(regions)

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        crops, regions = self.whole_images(images)
        logits, relative = self.score_regions(crops)
        if not self.training:
            return self._decode(logits, relative, regions)
        if targets is None:
            raise ValueError("training needs targets")
        class_targets, box_targets, positive = self._targets(targets, regions, len(self.class_names))
        return self.loss(logits, relative, class_targets, box_targets, positive)

    @staticmethod
    def _targets(
        targets: list[dict[str, Tensor]], regions: Tensor, classes: int
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per image: the largest object is the one to localise (a crop holds at most one)."""
        class_targets = regions.new_zeros(len(targets), classes)
        box_targets = regions.new_zeros(len(targets), 4)
        positive = torch.zeros(len(targets), dtype=torch.bool, device=regions.device)
        for index, target in enumerate(targets):
            boxes = target["boxes"]
            if len(boxes) == 0:
                continue
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            largest = int(areas.argmax())
            class_targets[index, int(target["labels"][largest])] = 1.0
            box_targets[index] = boxes_to_regions(
                boxes[largest : largest + 1].to(regions), regions[index : index + 1]
            )[0]
            positive[index] = True
        return class_targets, box_targets, positive

    def _predict(self, images: list[Tensor], timer: StageTimer) -> list[dict[str, Tensor]]:
        with timer.stage("preprocess"):
            crops, regions = self.whole_images(images)
        with timer.stage("inference"):
            logits, relative = self.score_regions(crops)
        with timer.stage("nms"):
            return self._decode(logits, relative, regions)

    def _decode(self, logits: Tensor, relative: Tensor, regions: Tensor) -> list[dict[str, Tensor]]:
        """At most one detection per image: its best class, if that scores above the threshold."""
        scores, labels = logits.sigmoid().max(dim=1)
        boxes = regions_to_boxes(relative, regions)
        boxes = torch.minimum(boxes.clamp(min=0), regions[:, 2:].repeat(1, 2))
        results = []
        for index in range(len(regions)):
            keep = scores[index : index + 1] > self._score_thresh
            results.append({
                "boxes": boxes[index : index + 1][keep],
                "scores": scores[index : index + 1][keep],
                "labels": labels[index : index + 1][keep],
            })  # fmt: skip
        return results


def build_localizer(
    *,
    backbone: str,
    class_names: Sequence[str],
    input_size: int,
    hidden: int = 256,
    pretrained: bool = True,
    trainable_stages: int | None = None,
    score_thresh: float = 0.5,
) -> Localizer:
    """The localization model on ``backbone``; regions are warped to ``input_size``² (128 is plenty
    for a region that holds one object)."""
    features = build_backbone(backbone, trainable_stages=trainable_stages, pretrained=pretrained)
    return Localizer(
        features, class_names=class_names, input_size=input_size, hidden=hidden, score_thresh=score_thresh
    )
