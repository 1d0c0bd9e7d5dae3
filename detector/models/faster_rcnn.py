"""Faster R-CNN (torchvision's) on a Vigil backbone with an FPN, behind Vigil's detector contract.

R-CNN classified ~2000 warped region crops one by one; Fast R-CNN shared one feature map and
pooled each region from it (RoI pooling); Faster R-CNN also learns the regions, with a region
proposal network (RPN) on the same features. Here the features are the backbone's C3–C5 plus an
FPN, anchors are sized to the data, and the number of proposals is a knob (speed vs recall).

:class:`FasterRCNNDetector` puts it behind the :class:`~detector.models.detector.Detector` contract:
labels are 0-based (torchvision's 0 is the background, shifted away here), boxes in the input
images' pixels. :func:`build_faster_rcnn` holds the recipe.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from detector.models.backbones import Backbone, build_backbone
from detector.models.detector import Detector
from detector.models.timing import StageTimer
from detector.models.transform import IMAGENET_MEAN, IMAGENET_STD

DEFAULT_ANCHOR_SIZES = (32, 64, 128, 256)
"""One size per FPN level (strides 8, 16, 32 and the max-pooled 64)."""


class FPNBackbone(nn.Module):
    """Backbone C3–C5 → FPN maps (plus a max-pooled level), as torchvision's detectors expect."""

    def __init__(self, body: Backbone, width: int) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(list(body.out_channels), width, extra_blocks=LastLevelMaxPool())
        self.out_channels = width

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        features = OrderedDict((str(i), feature) for i, feature in enumerate(self.body(x)))
        return self.fpn(features)


class FasterRCNNDetector(Detector):
    """torchvision's ``FasterRCNN`` (whose classes are background + ``class_names``) with 0-based
    labels; ``input_size`` is its transform's longer side."""

    loss_names = ("loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg")
    box_loss_names = ("loss_box_reg", "loss_rpn_box_reg")

    def __init__(self, model: FasterRCNN, *, class_names: Sequence[str]) -> None:
        super().__init__(class_names=class_names, input_size=model.transform.max_size)
        classes = model.roi_heads.box_predictor.cls_score.out_features
        if len(self.class_names) + 1 != classes:
            raise ValueError(f"{len(self.class_names)} class names for {classes} classes with the background")
        self.model = model

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        images = [_as_float(image) for image in images]
        if targets is not None:
            targets = [{**t, "labels": t["labels"] + 1} for t in targets]
        output = self.model(images, targets)
        return output if self.training else [_shift_labels(result) for result in output]

    @property
    def score_thresh(self) -> float:
        return float(self.model.roi_heads.score_thresh)

    @score_thresh.setter
    def score_thresh(self, value: float) -> None:
        self.model.roi_heads.score_thresh = value

    def _predict(self, images: list[Tensor], timer: StageTimer) -> list[dict[str, Tensor]]:
        """NMS runs inside the RoI heads, so it counts as ``inference``; ``nms`` is the way back."""
        model = self.model
        with timer.stage("preprocess"):
            floats = [_as_float(image) for image in images]
            sizes = [tuple(image.shape[-2:]) for image in floats]
            batch, _ = model.transform(floats)
        with timer.stage("inference"):
            features = model.backbone(batch.tensors)
            proposals, _ = model.rpn(batch, features)
            detections, _ = model.roi_heads(features, proposals, batch.image_sizes)
        with timer.stage("nms"):
            detections = model.transform.postprocess(detections, batch.image_sizes, sizes)
        return [_shift_labels(result) for result in detections]


def _as_float(image: Tensor) -> Tensor:
    return image.float() / 255 if image.dtype == torch.uint8 else image


def _shift_labels(result: dict[str, Tensor]) -> dict[str, Tensor]:
    return {**result, "labels": result["labels"] - 1}


def build_faster_rcnn(
    *,
    backbone: str,
    class_names: Sequence[str],
    input_size: int,
    fpn_width: int = 128,
    anchor_sizes: Sequence[int] = DEFAULT_ANCHOR_SIZES,
    proposals: int = 300,
    pretrained: bool = True,
    trainable_stages: int | None = None,
    score_thresh: float = 0.05,
    nms_iou_thresh: float = 0.5,
) -> FasterRCNNDetector:
    """Faster R-CNN on ``backbone`` + FPN; images resized so the longer side is ``input_size``.

    ``proposals`` is the RPN's post-NMS proposal count at inference (training keeps 2000→1000
    torchvision defaults scaled down in the same ratio)."""
    body = build_backbone(backbone, trainable_stages=trainable_stages, pretrained=pretrained)
    anchors = AnchorGenerator(tuple((size,) for size in anchor_sizes), ((0.5, 1.0, 2.0),) * len(anchor_sizes))
    model = FasterRCNN(
        FPNBackbone(body, fpn_width),
        num_classes=len(class_names) + 1,
        min_size=input_size,
        max_size=input_size,
        image_mean=list(IMAGENET_MEAN),
        image_std=list(IMAGENET_STD),
        rpn_anchor_generator=anchors,
        rpn_pre_nms_top_n_test=proposals * 2,
        rpn_post_nms_top_n_test=proposals,
        rpn_pre_nms_top_n_train=max(proposals * 4, 1000),
        rpn_post_nms_top_n_train=max(proposals * 2, 500),
        box_score_thresh=score_thresh,
        box_nms_thresh=nms_iou_thresh,
    )
    return FasterRCNNDetector(model, class_names=class_names)


def anchor_sizes_for(boxes: Tensor, levels: int = len(DEFAULT_ANCHOR_SIZES)) -> tuple[int, ...]:
    """Anchor sizes sized to the data: geometric-mean box sides at evenly spaced quantiles of the
    training boxes (already scaled to the input size), one per FPN level."""
    sides = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1).sqrt()
    quantiles = torch.linspace(0.1, 0.9, levels)
    return tuple(round(float(v)) for v in torch.quantile(sides, quantiles))
