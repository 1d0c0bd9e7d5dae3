"""Region inference: the model run again on native-resolution crops of a batch's frames, merged with
the whole-frame detections (docs/detector.md#region-inference; the crops are planned by
``detector/regions.py``).

Every crop of a batch goes through the model in one ``predict`` call. Boxes come back shifted into
frame pixels; a crop box touching one of the crop's inner edges (an edge that is not the frame's)
is cut by it and dropped, since the object sticks out of the crop and the whole frame, or another
crop, sees it whole. What is left joins the frame's whole-frame detections in one class-wise NMS
at the runner's ``nms_iou_thresh``: the higher score wins, usually the crop's sharper look.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.boxes import iou_matrix_np
from detector.postprocess import Found, batched_nms
from detector.regions import Crop, plan_regions
from detector.runner import DecodedFrame, DetectorRunner, native_image, to_detections
from shared.config import RegionsConfig
from shared.errors import DecodeError
from shared.logs import LIMITED_INTERVAL_S, log_limited
from shared.schemas import Box, Detection, Frame

log = logging.getLogger(__name__)
EDGE_PX = 2.0
"""A crop box within this many pixels of an inner crop edge is cut by it."""


@dataclass(frozen=True)
class RegionPass:
    """One batch's region step, per frame of the batch."""

    detections: list[list[Detection]]
    """The whole-frame detections merged with the crops' (score order)."""
    crops: list[int]
    """Crops inferred."""
    found: list[int]
    """Detections kept from crops that no whole-frame detection of their class overlaps at
    ``nms_iou_thresh`` or more: what the region step added."""
    seconds: float
    """The step's time: native decode, crops, model, merge."""


class RegionRunner:
    """Plans and runs the crops of a batch with the runner's model (see the module docstring)."""

    def __init__(self, runner: DetectorRunner, config: RegionsConfig) -> None:
        self.runner = runner
        self.config = config

    def plan(self, frame: Frame, *, tracks: Sequence[Box] = (), motion: Sequence[Box] = ()) -> list[Crop]:
        config = self.config
        return plan_regions(
            frame.width, frame.height, side=self.runner.input_size, max_regions=config.max_regions,
            min_frame_scale=config.min_frame_scale, tracks=tracks, motion=motion,
        )  # fmt: skip

    def run(
        self, batch: Sequence[DecodedFrame], whole: Sequence[list[Detection]], plans: Sequence[list[Crop]]
    ) -> RegionPass:
        """Each frame's ``plans`` crops inferred and merged with its ``whole``-frame detections. A frame
        whose full-size image will not decode keeps its whole-frame detections (logged)."""
        started = time.perf_counter()
        crops: list[Any] = []
        owners: list[tuple[int, Crop]] = []
        for index, (item, plan) in enumerate(zip(batch, plans, strict=True)):
            if plan:
                try:
                    image = native_image(item, self.runner.model.image)
                except DecodeError as error:
                    log_limited(log, f"region_decode:{item.frame.camera}", LIMITED_INTERVAL_S,
                                "camera %s seq %d: no regions (%s)", item.frame.camera, item.frame.seq,
                                error)  # fmt: skip
                    continue
                for x1, y1, x2, y2 in plan:
                    crops.append(image[:, y1:y2, x1:x2])
                    owners.append((index, (x1, y1, x2, y2)))
        detections, found = list(whole), [0] * len(batch)
        if not crops:
            return RegionPass(detections, [0] * len(batch), found, time.perf_counter() - started)
        results = self.runner.model.predict(crops)
        per_frame: dict[int, list[np.ndarray]] = {}
        for (index, crop), result in zip(owners, results, strict=True):
            frame = batch[index].frame
            rows = _in_frame(result, crop)
            rows = rows[~_cut(rows[:, :4], crop, frame.width, frame.height)]
            per_frame.setdefault(index, []).append(rows)
        for index, rows in per_frame.items():
            detections[index], found[index] = self._merge(whole[index], np.concatenate(rows))
        counts = [0] * len(batch)
        for index, _crop in owners:
            counts[index] += 1
        return RegionPass(detections, counts, found, time.perf_counter() - started)

    def _merge(self, whole: list[Detection], rows: np.ndarray) -> tuple[list[Detection], int]:
        """One class-wise NMS over the frame's whole-frame detections and its crops' ``rows``
        (x1, y1, x2, y2, score, class), and how many crop detections it kept that were new."""
        if not len(rows):
            return whole, 0
        iou = self.runner.nms_iou_thresh
        crop_dets = to_detections(
            rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64), self.runner.class_names
        )
        own = np.asarray([[*d.box, d.score, d.class_id] for d in whole], np.float32).reshape(-1, 6)
        every = np.concatenate([own, rows.astype(np.float32)])
        keep = batched_nms(every[:, :4], every[:, 4], every[:, 5].astype(np.int64), iou).tolist()
        merged = [whole[i] if i < len(whole) else crop_dets[i - len(whole)] for i in keep]
        kept_rows = every[[i for i in keep if i >= len(whole)]]
        if not len(own) or not len(kept_rows):
            return merged, len(kept_rows)
        overlap = iou_matrix_np(kept_rows[:, :4], own[:, :4])
        overlap[kept_rows[:, 5][:, None] != own[:, 5][None, :]] = 0
        return merged, int((overlap.max(axis=1) < iou).sum())


def _in_frame(result: Found, crop: Crop) -> np.ndarray:
    """A crop's model output as (K, 6) rows x1, y1, x2, y2, score, class in frame pixels."""
    offset = np.asarray([crop[0], crop[1], crop[0], crop[1]], np.float32)
    return np.concatenate([
        result["boxes"] + offset, result["scores"][:, None], result["labels"][:, None].astype(np.float32)
    ], axis=1)  # fmt: skip


def _cut(boxes: np.ndarray, crop: Crop, width: int, height: int) -> np.ndarray:
    """Which boxes touch an inner edge of ``crop`` (one that is not an edge of the frame)."""
    x1, y1, x2, y2 = crop
    return (
        ((boxes[:, 0] <= x1 + EDGE_PX) & (x1 > 0)) | ((boxes[:, 1] <= y1 + EDGE_PX) & (y1 > 0))
        | ((boxes[:, 2] >= x2 - EDGE_PX) & (x2 < width)) | ((boxes[:, 3] >= y2 - EDGE_PX) & (y2 < height))
    )  # fmt: skip
