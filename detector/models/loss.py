"""YOLO training loss: task-aligned assignment, then BCE on classes and GIoU + L1 on boxes.

This is the lecture's localisation loss ``α·log-loss + β·box-loss`` with today's terms: the
log-loss is a BCE whose targets are IoU-aware scores, the box loss is ``1 - GIoU`` plus L1 on the
edge distances. An image without objects contributes classification loss only (box loss exactly 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from detector.models.box_ops import iou_matrix, paired_giou
from detector.models.heads import HeadOutput


@dataclass(frozen=True)
class LossWeights:
    classification: float = 1.0
    giou: float = 5.0
    l1: float = 1.0


@dataclass(frozen=True)
class Assignment:
    target_scores: Tensor  # (A, C): IoU-aware class targets, 0 for background
    target_boxes: Tensor  # (A, 4) xyxy, meaningful where foreground
    foreground: Tensor  # (A,) bool


class TaskAlignedAssigner:
    """TOOD / YOLOv8 assignment: for each ground-truth box, the ``topk`` anchor points inside it
    with the best alignment ``score^alpha · IoU^beta`` become positives; a point claimed by several
    boxes goes to the one it overlaps most. Targets are the alignment normalised per box to that
    box's best IoU, so the classifier learns to score localisation quality."""

    def __init__(self, *, topk: int = 10, alpha: float = 1.0, beta: float = 6.0) -> None:
        self.topk, self.alpha, self.beta = topk, alpha, beta

    @torch.no_grad()
    def __call__(
        self, scores: Tensor, boxes: Tensor, points: Tensor, gt_boxes: Tensor, gt_labels: Tensor
    ) -> Assignment:
        anchors, num_classes = scores.shape
        target_scores = scores.new_zeros((anchors, num_classes))
        if gt_boxes.numel() == 0:
            return Assignment(
                target_scores, boxes.new_zeros((anchors, 4)), scores.new_zeros(anchors, dtype=torch.bool)
            )
        inside = self._inside(points, gt_boxes)  # (G, A)
        ious = iou_matrix(gt_boxes, boxes).clamp(min=0) * inside
        align = scores[:, gt_labels].T.pow(self.alpha) * ious.pow(self.beta)
        # Tie-break among equal (e.g. zero, early in training) alignments by closeness to the centre.
        align = align + inside * 1e-9 / (1 + self._centre_distance(points, gt_boxes))
        top = align.topk(min(self.topk, anchors), dim=1).indices
        candidate = torch.zeros_like(inside).scatter_(1, top, True) & inside
        # A point claimed by several boxes keeps the one it overlaps most.
        claimed = candidate.sum(0) > 1
        if claimed.any():
            best = (ious * candidate).argmax(0)
            candidate[:, claimed] = F.one_hot(best[claimed], candidate.shape[0]).T.bool()
        foreground = candidate.any(0)
        assigned = candidate.float().argmax(0)  # (A,) index of the box each point serves
        align = align * candidate
        norm = align / align.amax(1, keepdim=True).clamp(min=1e-12) * (ious * candidate).amax(1, keepdim=True)
        quality = norm.amax(0)  # (A,)
        labels = gt_labels[assigned]
        target_scores[foreground, labels[foreground]] = quality[foreground]
        return Assignment(target_scores, gt_boxes[assigned], foreground)

    @staticmethod
    def _inside(points: Tensor, gt_boxes: Tensor) -> Tensor:
        x, y = points[None, :, 0], points[None, :, 1]
        inside = (x > gt_boxes[:, None, 0]) & (x < gt_boxes[:, None, 2])
        inside &= (y > gt_boxes[:, None, 1]) & (y < gt_boxes[:, None, 3])
        # A box smaller than every stride may contain no point: give it its nearest one.
        empty = ~inside.any(1)
        if empty.any():
            nearest = TaskAlignedAssigner._centre_distance(points, gt_boxes[empty]).argmin(1)
            inside[empty.nonzero().squeeze(1), nearest] = True
        return inside

    @staticmethod
    def _centre_distance(points: Tensor, gt_boxes: Tensor) -> Tensor:
        centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
        return torch.cdist(centres, points)


class DetectionLoss:
    """Losses of a batch from the head's dense output and per-image targets
    (``{"boxes": (G, 4) xyxy in batch pixels, "labels": (G,) int64}``)."""

    def __init__(
        self, weights: LossWeights = LossWeights(), assigner: TaskAlignedAssigner | None = None
    ) -> None:
        self.weights = weights
        self.assigner = assigner or TaskAlignedAssigner()

    def __call__(self, output: HeadOutput, targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        boxes = output.boxes()
        scores = output.class_logits.detach().sigmoid()
        assignments = [
            self.assigner(scores[i], boxes[i].detach(), output.points, t["boxes"], t["labels"])
            for i, t in enumerate(targets)
        ]
        target_scores = torch.stack([a.target_scores for a in assignments])
        target_boxes = torch.stack([a.target_boxes for a in assignments])
        foreground = torch.stack([a.foreground for a in assignments])
        normaliser = target_scores.sum().clamp(min=1.0)
        classification = (
            F.binary_cross_entropy_with_logits(output.class_logits, target_scores, reduction="sum")
            / normaliser
        )
        weight = target_scores.sum(-1)[foreground]
        _, giou = paired_giou(boxes[foreground], target_boxes[foreground])
        giou_loss = ((1 - giou) * weight).sum() / normaliser
        strides = output.strides.expand(foreground.shape)[foreground][:, None]
        points = output.points.expand(*foreground.shape, 2)[foreground]
        target_ltrb = torch.cat(
            [points - target_boxes[foreground][:, :2], target_boxes[foreground][:, 2:] - points], 1
        )
        l1 = (
            F.l1_loss(output.ltrb[foreground] / strides, target_ltrb / strides, reduction="none").sum(-1)
            * weight
        )
        l1_loss = l1.sum() / normaliser
        return {
            "classification": self.weights.classification * classification,
            "giou": self.weights.giou * giou_loss,
            "l1": self.weights.l1 * l1_loss,
        }
