"""Detection by classifying regions: the sliding-window detector and R-CNN.

Both crop many regions out of the frame, warp each to the localization model's input, classify it
and refine its box, then keep the best with NMS. They differ only in where the regions come from:
a multi-scale grid (:class:`~detector.models.proposals.SlidingWindows`) or selective search
(:class:`~detector.models.proposals.SelectiveSearch`, R-CNN's proposals). The CNN runs once per
region, which is why they are slow: Fast R-CNN shares one feature map between the regions, and
Faster R-CNN and YOLO drop the external regions altogether.

Training is the localization model's, on crops (see ``detector.training.crops``); a trained
localizer's weights load into either (:func:`from_localizer`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from detector.models.box_ops import clip_boxes
from detector.models.detector import Detector
from detector.models.localizer import Localizer, build_localizer, regions_to_boxes, warp_regions
from detector.models.proposals import DEFAULT_WINDOW_SCALES, SelectiveSearch, SlidingWindows
from detector.models.timing import StageTimer

Proposer = Callable[[Tensor], Tensor]
"""One CHW image → ``(K, 4)`` xyxy regions in its pixels."""


@dataclass(frozen=True)
class RegionDecode:
    nms_iou_thresh: float = 0.4
    max_detections: int = 100
    region_batch: int = 64
    """Regions per forward pass of the localizer (bounds the memory, not the speed)."""


class RegionDetector(Detector):
    """``proposer`` → warp → :class:`Localizer` per region → box refinement → class-aware NMS.

    Train mode is the localizer's (crops in, its losses out); ``predict`` runs on whole frames.
    ``input_size`` is the side the regions are warped to."""

    loss_names = Localizer.loss_names
    box_loss_names = Localizer.box_loss_names

    def __init__(
        self, localizer: Localizer, proposer: Proposer, *, decode: RegionDecode = RegionDecode()
    ) -> None:
        super().__init__(class_names=localizer.class_names, input_size=localizer.input_size)
        self.localizer = localizer
        self.proposer = proposer
        self.decode_config = decode

    @property
    def score_thresh(self) -> float:
        return self.localizer.score_thresh

    @score_thresh.setter
    def score_thresh(self, value: float) -> None:
        self.localizer.score_thresh = value

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        if self.training:
            return self.localizer(images, targets)
        return self.predict(images)

    def _predict(self, images: list[Tensor], timer: StageTimer) -> list[dict[str, Tensor]]:
        results = []
        for image in images:
            with timer.stage("proposals"):
                regions = self.proposer(image).to(image.device, torch.float32)
            with timer.stage("preprocess"):
                pixels = self.localizer.normalise(image)
            with timer.stage("inference"):
                logits, relative = self._score(pixels, regions)
            with timer.stage("nms"):
                results.append(self._decode(logits, relative, regions, image))
        return results

    def _score(self, pixels: Tensor, regions: Tensor) -> tuple[Tensor, Tensor]:
        """Warp and score the regions in chunks of ``region_batch``."""
        classes = len(self.class_names)
        if len(regions) == 0:
            return regions.new_zeros(0, classes), regions.new_zeros(0, 4)
        logits, relative = [], []
        for chunk in regions.split(self.decode_config.region_batch):
            chunk_logits, chunk_relative = self.localizer.score_regions(
                warp_regions(pixels, chunk, self.input_size)
            )
            logits.append(chunk_logits)
            relative.append(chunk_relative)
        return torch.cat(logits), torch.cat(relative)

    def _decode(self, logits: Tensor, relative: Tensor, regions: Tensor, image: Tensor) -> dict[str, Tensor]:
        cfg = self.decode_config
        scores = logits.sigmoid()
        region_index, label = (scores > self.score_thresh).nonzero(as_tuple=True)
        kept_scores = scores[region_index, label]
        boxes = regions_to_boxes(relative[region_index], regions[region_index])
        boxes = clip_boxes(boxes, float(image.shape[-1]), float(image.shape[-2]))
        order = batched_nms(boxes, kept_scores, label, cfg.nms_iou_thresh)[: cfg.max_detections]
        return {"boxes": boxes[order], "scores": kept_scores[order], "labels": label[order]}


def _region_detector(
    proposer: Proposer,
    *,
    backbone: str,
    class_names: Sequence[str],
    input_size: int,
    pretrained: bool,
    trainable_stages: int | None,
    score_thresh: float,
    nms_iou_thresh: float,
) -> RegionDetector:
    localizer = build_localizer(
        backbone=backbone,
        class_names=class_names,
        input_size=input_size,
        pretrained=pretrained,
        trainable_stages=trainable_stages,
        score_thresh=score_thresh,
    )
    return RegionDetector(localizer, proposer, decode=RegionDecode(nms_iou_thresh=nms_iou_thresh))


def build_sliding_window(
    *,
    backbone: str,
    class_names: Sequence[str],
    input_size: int,
    window_scales: Sequence[float] = DEFAULT_WINDOW_SCALES,
    window_stride: float = 0.5,
    pretrained: bool = True,
    trainable_stages: int | None = None,
    score_thresh: float = 0.05,
    nms_iou_thresh: float = 0.4,
) -> RegionDetector:
    """The localization model slid over a grid of square windows (sides: ``window_scales`` of the
    shorter image side, ``window_stride`` of a window apart)."""
    return _region_detector(
        SlidingWindows(scales=tuple(window_scales), stride=window_stride),
        backbone=backbone, class_names=class_names, input_size=input_size, pretrained=pretrained,
        trainable_stages=trainable_stages, score_thresh=score_thresh, nms_iou_thresh=nms_iou_thresh,
    )  # fmt: skip


def build_rcnn(
    *,
    backbone: str,
    class_names: Sequence[str],
    input_size: int,
    proposals: int = 500,
    proposal_side: int = 384,
    proposal_mode: str = "fast",
    pretrained: bool = True,
    trainable_stages: int | None = None,
    score_thresh: float = 0.05,
    nms_iou_thresh: float = 0.4,
) -> RegionDetector:
    """R-CNN: the localization model on each of ``proposals`` selective-search regions."""
    return _region_detector(
        SelectiveSearch(max_proposals=proposals, side=proposal_side, mode=proposal_mode),
        backbone=backbone, class_names=class_names, input_size=input_size, pretrained=pretrained,
        trainable_stages=trainable_stages, score_thresh=score_thresh, nms_iou_thresh=nms_iou_thresh,
    )  # fmt: skip
