"""Region planning: where in a frame to look again at native resolution (docs/detector.md#region-inference).

The whole-frame pass sees a 1920×1080 frame shrunk to the model's input (384 px), so a pistol
40 px tall reaches the network at 8. A *region* is a square crop of the frame's own pixels, one
model input wide (``side``), around something worth a closer look: first the boxes of the
camera's tracks (smallest first: small objects are the point), then the frame's motion boxes
(largest first). A box already inside a chosen crop, or bigger than a crop (the whole frame sees
it well enough), gets no crop of its own. Frames smaller than ``min_frame_scale`` × ``side`` on
their long side get none: the whole-frame pass already sees them at (nearly) native resolution.

Pure geometry, deterministic: the same boxes give the same crops, in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.schemas import Box

Crop = tuple[int, int, int, int]
"""x1, y1, x2, y2 in whole frame pixels, inside the frame."""


def plan_regions(
    width: int, height: int, *, side: int, max_regions: int, min_frame_scale: float,
    tracks: Sequence[Box] = (), motion: Sequence[Box] = (),
) -> list[Crop]:  # fmt: skip
    """Up to ``max_regions`` crops of a ``width``×``height`` frame, each ``side`` square (clipped to
    the frame), centred on the ``tracks`` boxes, smallest first, then on the ``motion`` boxes,
    largest first (see the module docstring)."""
    if max_regions <= 0 or max(width, height) < min_frame_scale * side:
        return []
    crop_w, crop_h = min(side, width), min(side, height)
    candidates = sorted(tracks, key=lambda box: (_area(box), box))
    candidates += sorted(motion, key=lambda box: (-_area(box), box))
    crops: list[Crop] = []
    for box in candidates:
        if len(crops) == max_regions:
            break
        x1, y1, x2, y2 = box
        if x2 - x1 > crop_w or y2 - y1 > crop_h or any(_inside(box, crop) for crop in crops):
            continue
        left = _placed((x1 + x2) / 2, crop_w, width)
        top = _placed((y1 + y2) / 2, crop_h, height)
        crops.append((left, top, left + crop_w, top + crop_h))
    return crops


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _inside(box: Box, crop: Crop) -> bool:
    return crop[0] <= box[0] and crop[1] <= box[1] and box[2] <= crop[2] and box[3] <= crop[3]


def _placed(centre: float, size: int, limit: int) -> int:
    """The first pixel of a ``size`` span centred on ``centre``, shifted to lie within ``limit``."""
    return min(max(0, round(centre - size / 2)), limit - size)
