"""Zones: point in polygon (even-odd, borders inside) and the share of a box inside a polygon."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.zones import Zone, clip_to_box, polygon_area, zones_by_camera
from shared.config import CameraConfig

SQUARE = Zone.from_config("square", [(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)])
# A U open at the bottom (y = 0): the notch x in (0.2, 0.8), y in [0, 0.6) is outside.
U_SHAPE = Zone.from_config("u", [(0, 0), (0.2, 0), (0.2, 0.6), (0.8, 0.6), (0.8, 0), (1, 0), (1, 1), (0, 1)])
DIAMOND = Zone.from_config("diamond", [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)])
TRIANGLE = Zone.from_config("triangle", [(0, 0), (1, 0), (0, 1)])


@pytest.mark.parametrize(
    ("x", "y", "inside"),
    [
        (0.4, 0.4, True),
        (0.1, 0.4, False),
        (0.7, 0.4, False),
        (0.4, 0.7, False),
        (0.2, 0.4, True),  # left edge
        (0.6, 0.6, True),  # a corner
        (0.4, 0.2, True),  # top edge
        (0.6000001, 0.4, False),
    ],
)
def test_square_contains_with_border_inside(x: float, y: float, inside: bool) -> None:
    assert SQUARE.contains(x, y) is inside


@pytest.mark.parametrize(
    ("x", "y", "inside"),
    [
        (0.1, 0.3, True),  # left arm
        (0.9, 0.3, True),  # right arm
        (0.5, 0.8, True),  # the bar across the top
        (0.5, 0.3, False),  # in the notch
        (0.5, 0.0, False),  # the notch's open side
        (0.5, 0.6, True),  # the notch's inner edge is border
        (0.2, 0.3, True),  # the notch's side is border
        (0.8, 0.0, True),  # a vertex
        (1.1, 0.5, False),
    ],
)
def test_concave_polygon(x: float, y: float, inside: bool) -> None:
    assert U_SHAPE.contains(x, y) is inside


@pytest.mark.parametrize(
    ("x", "y", "inside"),
    [(0.2, 0.5, True), (0.5, 0.5, True), (0.9, 0.5, True), (1.2, 0.5, False), (-0.1, 0.5, False),
     (0.5, 0.0, True), (0.1, 0.1, False), (0.75, 0.25, True)],
)  # fmt: skip
def test_rays_through_vertices(x: float, y: float, inside: bool) -> None:
    assert DIAMOND.contains(x, y) is inside


@pytest.mark.parametrize(
    ("zone", "box", "expected"),
    [
        (SQUARE, (0.3, 0.3, 0.5, 0.5), 1.0),  # wholly inside
        (SQUARE, (0.7, 0.7, 0.9, 0.9), 0.0),  # wholly outside
        (SQUARE, (0.4, 0.3, 0.8, 0.5), 0.5),  # right half sticks out
        (SQUARE, (0.1, 0.1, 0.7, 0.7), 0.16 / 0.36),  # box holds the whole square
        (TRIANGLE, (0, 0, 1, 1), 0.5),
        (TRIANGLE, (0.5, 0, 1, 0.5), 0.5),  # ∫(1 - x) dx over [0.5, 1] = 0.125 of 0.25
        (U_SHAPE, (0, 0, 1, 1), 0.64),  # 1 minus the 0.6 x 0.6 notch
        (U_SHAPE, (0.1, 0.1, 0.9, 0.5), 0.25),  # two 0.1 x 0.4 strips of a 0.8 x 0.4 box
        (U_SHAPE, (0.3, 0.1, 0.7, 0.5), 0.0),  # wholly in the notch
        (U_SHAPE, (0.5, 0.4, 0.7, 0.8), 0.5),  # straddles the notch's top edge
    ],
)
def test_overlap_matches_hand_computed_areas(zone: Zone, box: tuple, expected: float) -> None:
    assert zone.overlap(box) == pytest.approx(expected)


def test_overlap_does_not_depend_on_orientation() -> None:
    reversed_u = Zone("u", tuple(reversed(U_SHAPE.polygon)))
    for box in [(0, 0, 1, 1), (0.1, 0.1, 0.9, 0.5), (0.15, 0.5, 0.35, 0.9)]:
        assert reversed_u.overlap(box) == pytest.approx(U_SHAPE.overlap(box))


def test_degenerate_boxes_are_all_in_or_all_out() -> None:
    assert SQUARE.overlap((0.4, 0.3, 0.4, 0.5)) == 1.0  # zero width, inside
    assert SQUARE.overlap((0.3, 0.6, 0.5, 0.6)) == 1.0  # zero height, on the border
    assert SQUARE.overlap((0.8, 0.8, 0.8, 0.8)) == 0.0  # a point outside
    assert U_SHAPE.overlap((0.5, 0.3, 0.5, 0.3)) == 0.0  # a point in the notch


def test_flipped_box_coordinates_are_sorted() -> None:
    assert SQUARE.overlap((0.8, 0.5, 0.4, 0.3)) == pytest.approx(0.5)


def test_clip_and_area_helpers() -> None:
    assert polygon_area([]) == 0.0
    assert polygon_area([(0, 0), (2, 0), (2, 3)]) == pytest.approx(3.0)
    assert clip_to_box(SQUARE.polygon, (0.7, 0.7, 0.9, 0.9)) == []


spans = st.tuples(st.floats(0, 1), st.floats(0, 1)).map(sorted)


@settings(max_examples=60, deadline=None)
@given(zone_x=spans, zone_y=spans, box_x=spans, box_y=spans)
def test_overlap_of_rectangles_is_their_intersection(zone_x, zone_y, box_x, box_y) -> None:
    (zx1, zx2), (zy1, zy2), (bx1, bx2), (by1, by2) = zone_x, zone_y, box_x, box_y
    box_area = (bx2 - bx1) * (by2 - by1)
    if box_area < 1e-6 or (zx2 - zx1) * (zy2 - zy1) < 1e-6:
        return
    zone = Zone("r", ((zx1, zy1), (zx2, zy1), (zx2, zy2), (zx1, zy2)))
    inter = max(0.0, min(zx2, bx2) - max(zx1, bx1)) * max(0.0, min(zy2, by2) - max(zy1, by1))
    assert zone.overlap((bx1, by1, bx2, by2)) == pytest.approx(inter / box_area, abs=1e-9)


def test_from_config_and_zones_by_camera() -> None:
    cameras = [
        CameraConfig(id="door", url="door.mp4", zones={"entry": ((0, 0), (1, 0), (1, 1))}),
        CameraConfig(id="yard", url="yard.mp4"),
    ]
    zones = zones_by_camera(cameras)
    assert zones == {"door": {"entry": Zone("entry", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)))}, "yard": {}}
    with pytest.raises(ValueError, match="3 points"):
        Zone.from_config("line", [(0, 0), (1, 1)])
