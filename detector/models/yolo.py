"""A YOLO-style single-stage detector: backbone → PAN-FPN neck → dense anchor-free head.

Contract (every Vigil detector follows it):

* input: a list of CHW RGB images, ``uint8`` (0–255) or float (0–1), any sizes, on the model's
  device; the ``transform`` letterboxes, normalises and batches them;
* train mode, with targets ``[{"boxes": (G, 4) xyxy in image pixels, "labels": (G,) int64}]``:
  returns a dict of named, weighted losses;
* :meth:`predict` (eval, no grad): one ``{"boxes": (K, 4) xyxy in the input image's pixels,
  "scores": (K,), "labels": (K,)}`` per image, after a score pre-filter, top-k and class-aware NMS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms

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


class YOLO(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        neck: PANFPN,
        head: DenseHead,
        transform: LetterboxTransform,
        *,
        loss: DetectionLoss | None = None,
        decode: DecodeConfig = DecodeConfig(),
    ) -> None:
        super().__init__()
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

    @property
    def score_thresh(self) -> float:
        return self.decode_config.score_thresh

    @score_thresh.setter
    def score_thresh(self, value: float) -> None:
        self.decode_config = replace(self.decode_config, score_thresh=value)

    @torch.no_grad()
    def predict(
        self, images: list[Tensor], *, timings: dict[str, float] | None = None
    ) -> list[dict[str, Tensor]]:
        """Eval-mode detections; adds seconds per stage (preprocess, inference, nms) to ``timings``."""
        if self.training:
            self.eval()
        timer = StageTimer(timings, images[0].device)
        with timer.stage("preprocess"):
            batch, metas, _ = self.transform(images)
        with timer.stage("inference"):
            output = self.head(self.neck(self.backbone(batch)))
        with timer.stage("nms"):
            return self.transform.postprocess(self.decode(output), metas)

    def decode(self, output: HeadOutput) -> list[dict[str, Tensor]]:
        """Dense output → per image boxes (batch pixels), scores, labels."""
        cfg = self.decode_config
        scores_all = output.class_logits.sigmoid()
        boxes_all = output.boxes()
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
