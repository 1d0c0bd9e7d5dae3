"""The letterbox geometry and the post-processing every YOLO engine shares, in numpy.

``decode_dense`` (score pre-filter → top k → class-aware NMS) is the one post-processing of every
engine: eager PyTorch hands it its dense output as arrays, OpenVINO and ONNX Runtime theirs. The
letterbox geometry (:class:`LetterboxGeometry`) is shared by the PyTorch transform and the numpy
letterbox of the compiled engines. Nothing here imports torch: the compiled engines serve without
it (docs/engines.md#memory).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import cv2
import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_VALUE = 114 / 255

Found = dict[str, np.ndarray]
"""One image's detections: ``boxes`` (K, 4) float32 xyxy, ``scores`` (K,) float32, ``labels`` (K,)
int64 indices into the class names."""


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


@dataclass(frozen=True)
class ImageMeta:
    """How one image was placed in the batch: resized by ``scale`` at the top-left corner."""

    scale: float
    width: int
    height: int


def chw(rgb: np.ndarray) -> np.ndarray:
    """An HWC image as CHW (a view), the layout the letterbox takes."""
    return rgb.transpose(2, 0, 1)


@dataclass(frozen=True)
class LetterboxGeometry:
    """Each image resized so its longer side is ``size`` (aspect kept), padded bottom/right to a
    ``size``×``size`` square, or with ``rect`` only to a multiple of ``stride`` on each side (the
    smallest that holds every image of the batch)."""

    size: int
    rect: bool = False
    stride: int = 32

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """An image's (height, width) once its longer side is ``size``."""
        scale = self.size / max(height, width)
        return min(self.size, round(height * scale)), min(self.size, round(width * scale))

    def batch_shape(self, sizes: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """(height, width) of the batch holding images of these resized sizes."""
        if not self.rect:
            return self.size, self.size
        stride = self.stride
        return (
            max(-(-height // stride) * stride for height, _ in sizes),
            max(-(-width // stride) * stride for _, width in sizes),
        )


@dataclass(frozen=True)
class Normalisation:
    """The network's input normalisation: ``(pixel / 255 - mean) / std`` per RGB channel."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        """A letterboxed ``uint8`` NHWC RGB batch → the network's float32 NCHW input, for an engine
        that cannot normalise in its graph (ONNX Runtime) and for INT8 calibration; one table
        lookup per pixel (``cv2.LUT``), then one plane copy per channel."""
        count, height, width, _ = pixels.shape
        batch = np.empty((count, 3, height, width), np.float32)
        for index, image in enumerate(pixels):
            for channel, plane in enumerate(cv2.split(cv2.LUT(image, self._table))):
                batch[index, channel] = plane
        return batch

    @cached_property
    def _table(self) -> np.ndarray:
        """Each channel's normalised value of each ``uint8`` level, as ``cv2.LUT`` takes it."""
        levels = np.arange(256) / 255
        table = np.stack([(levels - m) / s for m, s in zip(self.mean, self.std, strict=True)], -1)
        return table.astype(np.float32).reshape(256, 1, 3)


@dataclass(frozen=True)
class Letterbox:
    """The compiled engines' letterbox: CHW RGB arrays (``uint8`` 0–255, or float 0–1, rounded to
    ``uint8``) → a ``uint8`` NHWC RGB batch padded with ``pad_value``, and boxes back to each
    image's pixels. The engine normalises the batch itself (:class:`Normalisation`; OpenVINO in its
    graph), so the letterbox only places pixels: 1.7 ms a 512×384 frame less than a float
    letterbox here. The geometry is the PyTorch transform's; its bilinear resize runs on ``uint8``,
    as the service's own shrinking of frames does (``detector.runner.decode_at_scale``), so the
    pixels differ from the float resize of the torch transform by rounding only."""

    geometry: LetterboxGeometry
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pad_value: float = PAD_VALUE

    @cached_property
    def normalisation(self) -> Normalisation:
        """The engines' normalisation of this letterbox's batches (one lookup table per letterbox)."""
        return Normalisation(self.mean, self.std)

    def __call__(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[ImageMeta]]:
        sizes = [self.geometry.resized(image.shape[1], image.shape[2]) for image in images]
        batch_h, batch_w = self.geometry.batch_shape(sizes)
        batch = np.full((len(images), batch_h, batch_w, 3), round(self.pad_value * 255), np.uint8)
        metas = []
        for index, (image, (new_h, new_w)) in enumerate(zip(images, sizes, strict=True)):
            height, width = image.shape[1:]
            hwc = image.transpose(1, 2, 0)
            if hwc.dtype != np.uint8:
                hwc = np.clip(np.rint(hwc * 255), 0, 255).astype(np.uint8)
            if (new_h, new_w) != (height, width):
                hwc = cv2.resize(np.ascontiguousarray(hwc), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
            batch[index, :new_h, :new_w] = hwc
            metas.append(ImageMeta(scale=self.geometry.size / max(height, width), width=width, height=height))
        return batch, metas

    @staticmethod
    def postprocess(results: list[Found], metas: Sequence[ImageMeta]) -> list[Found]:
        """Boxes from batch pixels back to each input image's pixels, clipped to it."""
        out = []
        for result, meta in zip(results, metas, strict=True):
            boxes = result["boxes"] / np.float32(meta.scale)
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, meta.width)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, meta.height)
            out.append({**result, "boxes": boxes})
        return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Greedy NMS: indices of the kept boxes, highest score first; a box is dropped when its IoU
    with a kept one is above ``iou_thresh`` (as torchvision's ``nms``)."""
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        top_left = np.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        inter = np.clip(bottom_right - top_left, 0, None).prod(axis=1)
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_thresh]
    return np.asarray(keep, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Class-aware :func:`nms`: boxes of different labels never suppress each other (each class is
    shifted apart, as torchvision's ``batched_nms`` does)."""
    if not len(boxes):
        return np.zeros(0, np.int64)
    shift = labels.astype(boxes.dtype)[:, None] * (float(boxes.max()) + 1)
    return nms(boxes + shift, scores, iou_thresh)


def decode_dense(scores_all: np.ndarray, boxes_all: np.ndarray, cfg: DecodeConfig) -> list[Found]:
    """Dense ``scores (N, A, C)`` (probabilities) and ``boxes (N, A, 4)`` (xyxy, batch pixels) → per
    image the boxes above ``cfg.score_thresh``, the top ``pre_nms_topk`` of them, then class-aware
    NMS, at most ``max_detections``. The one post-processing of every engine."""
    num_classes = scores_all.shape[-1]
    results = []
    for scores, boxes in zip(scores_all, boxes_all, strict=True):
        flat = scores.reshape(-1)
        keep = np.flatnonzero(flat > cfg.score_thresh)
        if keep.size > cfg.pre_nms_topk:
            keep = keep[np.argpartition(-flat[keep], cfg.pre_nms_topk - 1)[: cfg.pre_nms_topk]]
        anchor, label = keep // num_classes, keep % num_classes
        kept_boxes, kept_scores = boxes[anchor].astype(np.float32), flat[keep].astype(np.float32)
        order = batched_nms(kept_boxes, kept_scores, label, cfg.nms_iou_thresh)[: cfg.max_detections]
        results.append({"boxes": kept_boxes[order], "scores": kept_scores[order],
                        "labels": label[order].astype(np.int64)})  # fmt: skip
    return results
