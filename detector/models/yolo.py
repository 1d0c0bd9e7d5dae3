"""A YOLO-style single-stage detector: backbone → PAN-FPN neck → dense anchor-free head.

It follows the :class:`~detector.models.detector.Detector` contract; :meth:`YOLO.decode` keeps, per
image, the boxes above a score pre-filter, the top k of them, then class-aware NMS.
:func:`build_yolo` holds the recipe: which backbone, the neck width, the head depth, thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from detector.models.backbones import build_backbone
from detector.models.detector import Detector
from detector.models.heads import DenseHead, HeadOutput
from detector.models.loss import DetectionLoss
from detector.models.necks import PANFPN
from detector.models.timing import StageTimer
from detector.models.transform import LetterboxTransform
from detector.postprocess import DecodeConfig, DecodedByConfig, decode_dense


class YOLO(DecodedByConfig, Detector):
    """Wires its parts together; ``input_size`` is the transform's, and the head predicts one score
    per name in ``class_names``."""

    loss_names = ("classification", "giou", "l1")
    box_loss_names = ("giou", "l1")

    def __init__(
        self,
        backbone: nn.Module,
        neck: PANFPN,
        head: DenseHead,
        transform: LetterboxTransform,
        *,
        class_names: Sequence[str],
        loss: DetectionLoss | None = None,
        decode: DecodeConfig | None = None,
    ) -> None:
        super().__init__(class_names=class_names, input_size=transform.size)
        if len(self.class_names) != head.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for a head of {head.num_classes} classes")
        self.backbone, self.neck, self.head, self.transform = backbone, neck, head, transform
        self.loss = loss or DetectionLoss()
        self.decode_config = decode or DecodeConfig()

    def forward(
        self, images: list[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        batch, metas, targets = self.transform(images, targets)
        output = self.head(self.neck(self.backbone(batch)))
        if self.training:
            if targets is None:
                raise ValueError("training needs targets")
            return self.loss(output, targets)
        return self.transform.postprocess(self.decode(output), metas)

    def _predict(self, images: list[Tensor], timer: StageTimer) -> list[dict[str, Tensor]]:
        with timer.stage("preprocess"):
            batch, metas, _ = self.transform(images)
        with timer.stage("inference"):
            output = self.head(self.neck(self.backbone(batch)))
        with timer.stage("nms"):
            return self.transform.postprocess(self.decode(output), metas)

    def decode(self, output: HeadOutput) -> list[dict[str, Tensor]]:
        """Dense output → per image boxes (batch pixels), scores, labels, on the output's device:
        the shared numpy post-processing (``detector/postprocess.py``), as every engine has it."""
        scores, boxes = output.class_logits.sigmoid(), output.boxes()
        found = decode_dense(scores.float().cpu().numpy(), boxes.float().cpu().numpy(), self.decode_config)
        device = scores.device
        return [{key: torch.from_numpy(value).to(device) for key, value in item.items()} for item in found]


def build_yolo(
    *,
    backbone: str,
    class_names: Sequence[str],
    input_size: int,
    neck_width: int = 96,
    head_depth: int = 2,
    pretrained: bool = True,
    trainable_stages: int | None = None,
    score_thresh: float = 0.05,
    nms_iou_thresh: float = 0.6,
) -> YOLO:
    """EfficientNet- (or other) backed YOLO: backbone C3–C5 → PAN-FPN → dense anchor-free head."""
    features = build_backbone(backbone, trainable_stages=trainable_stages, pretrained=pretrained)
    neck = PANFPN(features.out_channels, neck_width)
    head = DenseHead(neck_width, len(class_names), features.strides, depth=head_depth)
    decode = DecodeConfig(score_thresh=score_thresh, nms_iou_thresh=nms_iou_thresh)
    return YOLO(features, neck, head, LetterboxTransform(input_size), class_names=class_names, decode=decode)
