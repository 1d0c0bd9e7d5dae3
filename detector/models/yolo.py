"""A YOLO-style single-stage detector: backbone → PAN-FPN neck → dense anchor-free head.

It follows the :class:`~detector.models.detector.Detector` contract; :meth:`YOLO.decode` keeps, per
image, the boxes above a score pre-filter, the top k of them, then class-aware NMS.
:func:`build_yolo` holds the recipe: which backbone, the neck width, the head depth, thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from torch import Tensor, nn
from torchvision.ops import batched_nms

from detector.models.backbones import build_backbone
from detector.models.detector import Detector
from detector.models.heads import DenseHead, HeadOutput
from detector.models.loss import DetectionLoss
from detector.models.necks import PANFPN
from detector.models.timing import StageTimer
from detector.models.transform import LetterboxTransform


@dataclass(frozen=True)
class DecodeConfig:
    score_thresh: float = 0.05
    """Pre-filter: boxes scoring below this never reach NMS."""
    pre_nms_topk: int = 1000
    nms_iou_thresh: float = 0.6
    max_detections: int = 100


class DecodedByConfig:
    """``score_thresh`` read from and written to the detector's :class:`DecodeConfig`."""

    decode_config: DecodeConfig

    @property
    def score_thresh(self) -> float:
        return self.decode_config.score_thresh

    @score_thresh.setter
    def score_thresh(self, value: float) -> None:
        self.decode_config = replace(self.decode_config, score_thresh=value)


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
        decode: DecodeConfig = DecodeConfig(),
    ) -> None:
        super().__init__(class_names=class_names, input_size=transform.size)
        if len(self.class_names) != head.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for a head of {head.num_classes} classes")
        self.backbone, self.neck, self.head, self.transform = backbone, neck, head, transform
        self.loss = loss or DetectionLoss()
        self.decode_config = decode

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
        """Dense output → per image boxes (batch pixels), scores, labels."""
        return decode_dense(output.class_logits.sigmoid(), output.boxes(), self.decode_config)


def decode_dense(scores_all: Tensor, boxes_all: Tensor, cfg: DecodeConfig) -> list[dict[str, Tensor]]:
    """Dense ``scores (N, A, C)`` (probabilities) and ``boxes (N, A, 4)`` (xyxy, batch pixels) → per
    image the boxes above ``cfg.score_thresh``, the top ``pre_nms_topk`` of them, then class-aware
    NMS. The one post-processing of every engine (eager PyTorch, OpenVINO, ONNX Runtime)."""
    num_classes = scores_all.shape[-1]
    results = []
    for scores, boxes in zip(scores_all, boxes_all, strict=True):
        flat = scores.flatten()
        keep = (flat > cfg.score_thresh).nonzero().squeeze(1)
        if keep.numel() > cfg.pre_nms_topk:
            keep = keep[flat[keep].topk(cfg.pre_nms_topk).indices]
        anchor, label = keep // num_classes, keep % num_classes
        kept_boxes, kept_scores = boxes[anchor], flat[keep]
        order = batched_nms(kept_boxes, kept_scores, label, cfg.nms_iou_thresh)[: cfg.max_detections]
        results.append({"boxes": kept_boxes[order], "scores": kept_scores[order], "labels": label[order]})
    return results


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
