"""Zones: named polygons in a camera's view, in 0-1 coordinates of the frame.

A rule asks one of two questions of a zone: is a point inside (:meth:`Zone.contains`, even-odd
rule, the border counts as inside), or how much of a box lies inside (:meth:`Zone.overlap`, the
polygon clipped to the box by Sutherland–Hodgman, then measured with the shoelace formula).
Pure geometry: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.config import CameraConfig
from shared.schemas import Box

Point = tuple[float, float]

# Distance (in frame fractions) within which a point counts as lying on an edge: far below a pixel.
BORDER_EPS = 1e-9


@dataclass(frozen=True)
class Zone:
    """A simple polygon (convex or not) named ``name``; ``polygon`` is (x, y) in 0-1 of the frame."""

    name: str
    polygon: tuple[Point, ...]

    @classmethod
    def from_config(cls, name: str, points: Sequence[Sequence[float]]) -> Zone:
        polygon = tuple((float(x), float(y)) for x, y in points)
        if len(polygon) < 3:
            raise ValueError(f"zone {name!r} needs at least 3 points")
        return cls(name=name, polygon=polygon)

    def contains(self, x: float, y: float) -> bool:
        """Whether (x, y) is inside the polygon (even-odd rule); points on the border are inside."""
        if _on_border(self.polygon, x, y):
            return True
        inside = False
        previous = self.polygon[-1]
        for current in self.polygon:
            (x1, y1), (x2, y2) = previous, current
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
            previous = current
        return inside

    def overlap(self, box_norm: Box) -> float:
        """The fraction (0-1) of ``box_norm``'s area (xyxy, 0-1) that lies inside the polygon.

        A box without area (a line or a point) is all in or all out: 1.0 if its centre is inside.
        """
        x1, x2 = sorted((box_norm[0], box_norm[2]))
        y1, y2 = sorted((box_norm[1], box_norm[3]))
        box_area = (x2 - x1) * (y2 - y1)
        if box_area <= 0:
            return 1.0 if self.contains((x1 + x2) / 2, (y1 + y2) / 2) else 0.0
        clipped = clip_to_box(self.polygon, (x1, y1, x2, y2))
        return min(1.0, polygon_area(clipped) / box_area)


def zones_by_camera(cameras: Iterable[CameraConfig]) -> dict[str, dict[str, Zone]]:
    """camera id → zone name → :class:`Zone`, from ``CameraConfig.zones``."""
    return {
        camera.id: {name: Zone.from_config(name, points) for name, points in camera.zones.items()}
        for camera in cameras
    }


def polygon_area(points: Sequence[Point]) -> float:
    """The area of a simple polygon (shoelace formula; either orientation)."""
    twice = 0.0
    previous = points[-1] if points else (0.0, 0.0)
    for current in points:
        twice += previous[0] * current[1] - current[0] * previous[1]
        previous = current
    return abs(twice) / 2


def clip_to_box(polygon: Sequence[Point], box: Box) -> list[Point]:
    """Sutherland–Hodgman: the part of ``polygon`` inside the rectangle ``box`` (xyxy, x1 <= x2, y1 <= y2).

    The clip window is convex, so this is right for any simple subject polygon, concave included
    (a concave one may come back with zero-width bridges along the box edges; they add no area).
    """
    x1, y1, x2, y2 = box
    points = list(polygon)
    for axis, bound, keep_above in ((0, x1, True), (0, x2, False), (1, y1, True), (1, y2, False)):
        points = _clip_half_plane(points, axis, bound, keep_above)
        if not points:
            break
    return points


def _clip_half_plane(points: list[Point], axis: int, bound: float, keep_above: bool) -> list[Point]:
    """Keep the part of the polygon with ``point[axis] >= bound`` (``keep_above``) or ``<= bound``."""

    def inside(point: Point) -> bool:
        return point[axis] >= bound if keep_above else point[axis] <= bound

    def crossing(a: Point, b: Point) -> Point:
        t = (bound - a[axis]) / (b[axis] - a[axis])
        other = 1 - axis
        result = [0.0, 0.0]
        result[axis] = bound
        result[other] = a[other] + t * (b[other] - a[other])
        return (result[0], result[1])

    kept: list[Point] = []
    if not points:
        return kept
    previous = points[-1]
    for current in points:
        if inside(current):
            if not inside(previous):
                kept.append(crossing(previous, current))
            kept.append(current)
        elif inside(previous):
            kept.append(crossing(previous, current))
        previous = current
    return kept


def _on_border(polygon: Sequence[Point], x: float, y: float) -> bool:
    previous = polygon[-1]
    for current in polygon:
        (x1, y1), (x2, y2) = previous, current
        previous = current
        if not (min(x1, x2) - BORDER_EPS <= x <= max(x1, x2) + BORDER_EPS):
            continue
        if not (min(y1, y2) - BORDER_EPS <= y <= max(y1, y2) + BORDER_EPS):
            continue
        length = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
        if abs(cross) <= BORDER_EPS * max(length, 1e-12):
            return True
    return False
