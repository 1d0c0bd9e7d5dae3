"""Fast R-CNN: selective-search proposals, one backbone pass per image, RoI pooling, one head.

R-CNN warped each of ~2000 proposals and ran the CNN on every crop. Fast R-CNN runs the CNN once
per image and pools each proposal from the shared feature map (RoI pooling, here RoIAlign over the
FPN levels), then one head gives both the class and a box correction per proposal. The proposals
are still selective search's, outside the network (and its slowest stage); Faster R-CNN learns
them (:mod:`detector.models.faster_rcnn`). Backbone, FPN and RoI heads are those of our Faster R-CNN.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes
from torchvision.ops import MultiScaleRoIAlign

from detector.models.backbones import build_backbone
from detector.models.detector import Detector
from detector.models.faster_rcnn import FPNBackbone, _as_float, _shift_labels
from detector.models.proposals import SelectiveSearch
from detector.models.timing import StageTimer
from detector.models.transform import IMAGENET_MEAN, IMAGENET_STD


class FastRCNNDetector(Detector):
    """torchvision's transform and RoI heads (classes: background + ``class_names``) on an FPN
    backbone, fed by a :class:`~detector.models.proposals.SelectiveSearch` ``proposer``.

    In training, ``targets[i]["proposals"]`` (xyxy, that image's pixels; precomputed) are used
    when present, else the proposer runs; the RoI heads add the ground-truth boxes to them."""

    loss_names = ("loss_classifier", "loss_box_reg")
    box_loss_names = ("loss_box_reg",)

    def __init__(
        self,
        backbone: FPNBackbone,
        roi_heads: RoIHeads,
        proposer: SelectiveSearch,
        *,
        class_names: Sequence[str],
        input_size: int,
    ) -> None:
        super().__init__(class_names=class_names, input_size=input_size)
        classes = roi_heads.box_predictor.cls_score.out_features
        if len(self.class_names) + 1 != classes:
            raise ValueError(f"{len(self.class_names)} class names for {classes} classes with the background")
        self.transform = GeneralizedRCNNTransform(
            input_size, input_size, list(IMAGENET_MEAN), list(IMAGENET_STD)
        )
        self.backbone = backbone
        self.roi_heads = roi_heads
        self.proposer = proposer
        """Not a module: no weights, settings from the builder."""

    @property
    def score_thresh(self) -> float:
        return float(self.roi_heads.score_thresh)

    @score_thresh.setter
    def score_thresh(self, value: float) -> None:
        self.roi_heads.score_thresh = value

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Train mode: the losses; eval mode: :meth:`predict`'s detections."""
        if not self.training:
            return self.predict(images)
        if targets is None:
            raise ValueError("training needs targets")
        proposals = [self._training_proposals(image, t) for image, t in zip(images, targets, strict=True)]
        labelled = [{"boxes": t["boxes"], "labels": t["labels"] + 1} for t in targets]
        batch, labelled, proposals = self._preprocess(images, proposals, labelled)
        _, losses = self.roi_heads(self.backbone(batch.tensors), proposals, batch.image_sizes, labelled)
        return losses

    def propose(self, image: Tensor) -> Tensor:
        """Selective search's boxes for one image, on its device."""
        return self.proposer(image).to(image.device)

    def _training_proposals(self, image: Tensor, target: dict[str, Tensor]) -> Tensor:
        """The target's precomputed proposals, else selective search's; the whole image if there
        are none (one background sample, so that a batch without objects still has a loss)."""
        boxes = target["proposals"] if "proposals" in target else self.propose(image)
        if len(boxes):
            return boxes
        height, width = image.shape[-2:]
        return boxes.new_tensor([[0, 0, width, height]])

    def _preprocess(
        self, images: list[Tensor], proposals: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> tuple[ImageList, list[dict[str, Tensor]] | None, list[Tensor]]:
        """Resize, normalise and batch the images (and targets); proposals scaled like them."""
        sizes = [image.shape[-2:] for image in images]
        batch, targets = self.transform([_as_float(image) for image in images], targets)
        proposals = [
            resize_boxes(boxes.float(), list(size), list(new_size))
            for boxes, size, new_size in zip(proposals, sizes, batch.image_sizes, strict=True)
        ]
        return batch, targets, proposals

    def _predict(self, images: list[Tensor], timer: StageTimer) -> list[dict[str, Tensor]]:
        """NMS runs inside the RoI heads, so it counts as ``inference``; ``nms`` is the way back."""
        with timer.stage("proposals"):
            proposals = [self.propose(image) for image in images]
        with timer.stage("preprocess"):
            batch, _, proposals = self._preprocess(images, proposals)
        with timer.stage("inference"):
            detections, _ = self.roi_heads(self.backbone(batch.tensors), proposals, batch.image_sizes)
        with timer.stage("nms"):
            sizes = [tuple(image.shape[-2:]) for image in images]
            detections = self.transform.postprocess(detections, batch.image_sizes, sizes)
        return [_shift_labels(result) for result in detections]


def build_fast_rcnn(
    *,
    backbone: str,
    class_names: Sequence[str],
    input_size: int,
    fpn_width: int = 128,
    proposals: int = 500,
    proposal_side: int = 384,
    proposal_mode: str = "fast",
    pretrained: bool = True,
    trainable_stages: int | None = None,
    score_thresh: float = 0.05,
    nms_iou_thresh: float = 0.5,
) -> FastRCNNDetector:
    """Fast R-CNN on ``backbone`` + FPN; images resized so the longer side is ``input_size``.

    ``proposals``, ``proposal_side`` and ``proposal_mode`` set the selective search (its box
    count, the side it shrinks images to, fast or quality). Training samples 128 RoIs per image,
    a quarter of them positive: IoU ≥ 0.5 with a ground-truth box is foreground, below is
    background (the paper's background starts at IoU 0.1; torchvision's RoIHeads has no lower
    bound, so boxes touching no object are background too)."""
    body = build_backbone(backbone, trainable_stages=trainable_stages, pretrained=pretrained)
    features = FPNBackbone(body, fpn_width)
    pool = MultiScaleRoIAlign(["0", "1", "2", "3"], output_size=7, sampling_ratio=2)
    representation = 1024
    roi_heads = RoIHeads(
        pool,
        TwoMLPHead(fpn_width * 7 * 7, representation),
        FastRCNNPredictor(representation, len(class_names) + 1),
        fg_iou_thresh=0.5,
        bg_iou_thresh=0.5,
        batch_size_per_image=128,
        positive_fraction=0.25,
        bbox_reg_weights=None,
        score_thresh=score_thresh,
        nms_thresh=nms_iou_thresh,
        detections_per_img=100,
    )
    proposer = SelectiveSearch(max_proposals=proposals, side=proposal_side, mode=proposal_mode)
    return FastRCNNDetector(features, roi_heads, proposer, class_names=class_names, input_size=input_size)
