"""Per-camera motion, Frigate style: what changed in a small grey frame against a running average.

Each frame is decoded grey at reduced size (a JPEG straight from its DCT coefficients at 1/2, 1/4
or 1/8, see ``shared.imaging.decode_grey``), shrunk to ``frame_height`` rows, blurred a little
against sensor and JPEG noise, and compared with the background (``cv2.accumulateWeighted`` of the
frames before it, weight ``background_alpha``). Pixels at least ``threshold`` grey levels off the
background, outside the mask polygons, are dilated into regions; regions of at least ``min_area``
(a share of the frame) are the motion boxes, in the frame's own pixels. When most of the frame
changes at once (lights, an IR switch, the camera moved) the background restarts from that frame,
which is reported as motion over the whole frame.

Pure pixels: no Redis, no clock, no thread of its own (``detector/gate.py`` decides what to skip).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from shared.config import MotionConfig
from shared.imaging import decode_grey, shrink
from shared.schemas import Box, Frame

RESTART_SHARE = 0.7
"""A frame whose changed share (of the unmasked area) is above this restarts the background."""
_BLUR = (3, 3)
_DILATE_ITERATIONS = 2


@dataclass(frozen=True)
class Motion:
    boxes: tuple[Box, ...]
    """Regions of change, xyxy in frame pixels (empty: nothing moved, or no background yet)."""
    changed: float
    """Share of the unmasked motion frame that changed (0-1)."""


NO_BACKGROUND = Motion(boxes=(), changed=0.0)
"""What a camera's first frame (or the first after :meth:`MotionDetector.reset`) reports."""


class MotionDetector:
    """One camera's background and mask; :meth:`detect` compares a frame with it and learns it."""

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self._background: np.ndarray | None = None
        """float32, the motion frame's size."""
        self._mask: np.ndarray | None = None
        """uint8, 255 where change counts, 0 under a mask polygon; the motion frame's size."""

    def reset(self) -> None:
        """Forget the background: the next frame starts it again."""
        self._background = None

    def detect(self, frame: Frame) -> Motion:
        """The frame's motion against the background, which then learns the frame. Raises
        :class:`~shared.errors.DecodeError` for corrupt data, before anything is learnt."""
        grey = self._motion_frame(frame)
        if self._background is None or self._background.shape != grey.shape:
            self._restart(grey)
            return NO_BACKGROUND
        changed = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        _, changed = cv2.threshold(changed, self.config.threshold - 1, 255, cv2.THRESH_BINARY)
        cv2.bitwise_and(changed, self._mask, dst=changed)
        share = cv2.countNonZero(changed) / max(1, cv2.countNonZero(self._mask))
        if share > RESTART_SHARE:
            self._restart(grey)
            return Motion(boxes=((0.0, 0.0, float(frame.width), float(frame.height)),), changed=share)
        cv2.accumulateWeighted(grey, self._background, self.config.background_alpha)
        return Motion(boxes=self._boxes(changed, frame), changed=share)

    def _motion_frame(self, frame: Frame) -> np.ndarray:
        height = self.config.frame_height
        grey = decode_grey(frame, min_height=height)
        if grey.shape[0] > height:
            width = max(1, round(grey.shape[1] * height / grey.shape[0]))
            grey = shrink(grey, (width, height))
        return cv2.GaussianBlur(grey, _BLUR, 0)

    def _restart(self, grey: np.ndarray) -> None:
        self._background = grey.astype(np.float32)
        if self._mask is None or self._mask.shape != grey.shape:
            self._mask = self._rasterised_mask(grey.shape)

    def _rasterised_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        height, width = shape[:2]
        mask = np.full((height, width), 255, np.uint8)
        for polygon in self.config.masks:
            points = np.array([(x * width, y * height) for x, y in polygon], np.float32)
            cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 0)
        return mask

    def _boxes(self, changed: np.ndarray, frame: Frame) -> tuple[Box, ...]:
        """Dilated regions of change of at least ``min_area``, scaled to frame pixels."""
        regions = cv2.dilate(changed, None, iterations=_DILATE_ITERATIONS)
        contours, _ = cv2.findContours(regions, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        min_area_px = self.config.min_area * changed.size
        scale_x, scale_y = frame.width / changed.shape[1], frame.height / changed.shape[0]
        boxes = []
        for contour in contours:
            if cv2.contourArea(contour) < min_area_px:
                continue
            x, y, w, h = cv2.boundingRect(contour)
            x2, y2 = min(frame.width, (x + w) * scale_x), min(frame.height, (y + h) * scale_y)
            boxes.append((x * scale_x, y * scale_y, x2, y2))
        return tuple(boxes)
