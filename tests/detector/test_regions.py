"""Region inference: the crop planner's geometry, the shipped detector finding a small pistol in a
native-resolution crop that the whole-frame pass misses, and the same in the real service on Redis."""

from __future__ import annotations

import time

import pytest
import redis
import torch

from detector.models.box_ops import iou_matrix
from detector.region_runner import RegionRunner
from detector.regions import plan_regions
from detector.runner import DetectorRunner, native_image
from detector.service import DetectorService
from shared.config import RegionsConfig
from shared.schemas import Box, Detection
from tests.detector.scenes import FRAME_NS, noisy_frame, paste_pistol, room
from tests.detector.test_motion_service import play
from tests.detector.test_service import detections, detector_config, owns
from tests.support.services import running, wait_for

SIDE = 384
"""The crop side these tests give the planner: their own geometry, not the model's (the service
passes the model's input size, 512 for the shipped detector, whose letterbox scales a crop to it)."""
FRAME = (1280, 720)
PISTOL_AT = (1000, 200)
PISTOL_SIDE = 32
"""The pasted crop's long side: the pistol itself is about 18×21 px, 7×8 px once the whole
1280×720 frame is shrunk to the shipped model's 512 (which finds it whole from a 40 px crop on)."""


def plan(tracks: tuple[Box, ...] = (), motion: tuple[Box, ...] = (), **overrides: object) -> list:
    settings: dict = {"side": SIDE, "max_regions": 2, "min_frame_scale": 1.5} | overrides
    return plan_regions(*settings.pop("size", FRAME), tracks=tracks, motion=motion, **settings)


# -- the planner ----------------------------------------------------------------------------------


def test_a_crop_is_a_model_input_square_centred_on_its_box() -> None:
    assert plan(motion=((600.0, 300.0, 640.0, 340.0),)) == [(428, 128, 812, 512)]


def test_crops_stay_inside_the_frame_and_are_clipped_to_a_small_one() -> None:
    assert plan(motion=((0.0, 0.0, 20.0, 20.0), (1260.0, 700.0, 1280.0, 720.0))) == [
        (0, 0, 384, 384), (896, 336, 1280, 720),
    ]  # fmt: skip
    assert plan(motion=((10.0, 10.0, 30.0, 30.0),), size=(1000, 300), min_frame_scale=1.0) == [
        (0, 0, 384, 300)
    ], "a frame lower than a crop: the crop is the frame's height"


def test_frames_the_whole_pass_already_sees_natively_get_no_crops() -> None:
    box = ((100.0, 100.0, 120.0, 120.0),)
    assert plan(motion=box, size=(575, 320)) == [], "below 1.5 model inputs on its long side"
    assert plan(motion=box, size=(576, 320)) != []
    assert plan(motion=box, max_regions=0) == []


def test_tracks_come_first_smallest_first_then_motion_largest_first_within_the_budget() -> None:
    small_track, big_track = (100.0, 100.0, 110.0, 110.0), (1100.0, 500.0, 1200.0, 600.0)
    small_motion, big_motion = (600.0, 50.0, 610.0, 60.0), (600.0, 600.0, 700.0, 700.0)
    crops = plan(tracks=(big_track, small_track), motion=(small_motion, big_motion), max_regions=16)
    centres = [((x1 + x2) / 2, (y1 + y2) / 2) for x1, y1, x2, y2 in crops]
    assert len(crops) == 4
    assert centres[0] == (192, 192) and centres[1][0] == 1088, "tracks, the smaller first"
    assert centres[2] == (650, 528) and centres[3][0] == 605, "then motion, the larger first"
    assert plan(tracks=(big_track, small_track), motion=(small_motion, big_motion)) == crops[:2]


def test_boxes_inside_a_chosen_crop_or_bigger_than_one_get_none() -> None:
    near = ((600.0, 300.0, 640.0, 340.0), (650.0, 350.0, 700.0, 400.0))
    assert len(plan(motion=near)) == 1, "the second box lies in the first one's crop"
    assert plan(motion=((0.0, 0.0, 800.0, 300.0),)) == [], "wider than a crop: the whole frame sees it"
    assert plan(motion=((0.0, 0.0, 1280.0, 720.0), (600.0, 300.0, 640.0, 340.0))) == [(428, 128, 812, 512)]


def test_the_plan_does_not_depend_on_the_order_of_the_boxes() -> None:
    boxes = [(float(x), float(y), x + 30.0, y + 30.0) for x, y in ((50, 60), (900, 400), (500, 100))]
    assert plan(motion=tuple(boxes)) == plan(motion=tuple(reversed(boxes)))


# -- the shipped detector -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> DetectorRunner:
    return DetectorRunner(engine="openvino", precision="int8")  # the default engine on this CPU


def iou(box: Box, other: Box) -> float:
    return float(iou_matrix(torch.tensor([box]), torch.tensor([other]))[0, 0])


def pistols(objects: list[Detection], truth: Box) -> list[Detection]:
    return [obj for obj in objects if obj.label == "pistol" and iou(obj.box, truth) >= 0.5]


@pytest.mark.parametrize("around", ["motion", "track"])
def test_a_small_pistol_missed_by_the_whole_frame_is_found_in_a_crop_around_its_box(
    shipped: DetectorRunner, around: str
) -> None:
    image, pasted, truth = paste_pistol(room(FRAME), PISTOL_AT, PISTOL_SIDE)
    frame = noisy_frame("cam", 0, image, ts_ns=0)
    decoded = shipped.decode(frame)
    whole, _seconds = shipped.detect([decoded])
    assert not pistols(whole[0], truth), "the whole frame shrinks it to about 7 px"
    regions = RegionRunner(shipped, RegionsConfig(enabled=True))
    plans = [regions.plan(frame, **{"tracks" if around == "track" else "motion": (pasted,)})]
    assert len(plans[0]) == 1
    outcome = regions.run([decoded], whole, plans)
    [found] = pistols(outcome.detections[0], truth)
    assert found.score >= 0.5
    assert outcome.crops == [1] and outcome.found == [1]


def test_a_pistol_both_passes_see_is_reported_once_with_the_higher_score(shipped: DetectorRunner) -> None:
    image, pasted, truth = paste_pistol(room(FRAME), PISTOL_AT, PISTOL_SIDE)
    frame = noisy_frame("cam", 0, image, ts_ns=0)
    faint = Detection(label="pistol", class_id=0, score=0.3, box=tuple(round(v, 1) for v in truth))
    table = Detection(label="pistol", class_id=0, score=0.4, box=(100.0, 100.0, 140.0, 150.0))
    regions = RegionRunner(shipped, RegionsConfig(enabled=True))
    outcome = regions.run([shipped.decode(frame)], [[faint, table]], [regions.plan(frame, motion=(pasted,))])
    [found] = pistols(outcome.detections[0], truth)
    assert found.score >= 0.5, "the crop's look wins the NMS"
    assert table in outcome.detections[0], "whole-frame detections outside the crops stay"
    assert outcome.found == [0], "the whole frame had it"


def test_a_crop_box_cut_by_an_inner_crop_edge_is_dropped(shipped: DetectorRunner) -> None:
    image, _pasted, truth = paste_pistol(room(FRAME), PISTOL_AT, PISTOL_SIDE)
    frame = noisy_frame("cam", 0, image, ts_ns=0)
    decoded = shipped.decode(frame)
    regions = RegionRunner(shipped, RegionsConfig(enabled=True))
    cut = round(truth[0] + 0.8 * (truth[2] - truth[0]))
    through = (cut - SIDE, 100, cut, 100 + SIDE)  # its right edge cuts the pistol's last fifth off
    x1, y1, x2, y2 = through
    [raw] = shipped.model.predict([native_image(decoded, shipped.model.image)[:, y1:y2, x1:x2]])
    assert (raw["boxes"][:, 2] >= SIDE - 2).any(), "the model sees the cut pistol at the crop's edge"
    outcome = regions.run([decoded], [[]], [[through]])
    assert outcome.crops == [1]
    assert all(
        x1 + 2 < obj.box[0] and y1 + 2 < obj.box[1] and obj.box[2] < x2 - 2 and obj.box[3] < y2 - 2
        for obj in outcome.detections[0]
    ), "nothing touching an inner edge of the crop"


# -- in the service -------------------------------------------------------------------------------


def test_the_service_reports_a_crop_found_pistol_in_frame_pixels_and_counts_it(
    redis_client: redis.Redis, shipped: DetectorRunner
) -> None:
    config = detector_config(regions=RegionsConfig(enabled=True))
    service = DetectorService(config, ["cam"], client=redis_client, runner=shipped)
    empty, (image, _pasted, truth) = room(FRAME), paste_pistol(room(FRAME), PISTOL_AT, PISTOL_SIDE)
    start_ns = time.time_ns()
    frames = [noisy_frame("cam", seq, empty if seq < 3 else image, ts_ns=start_ns + seq * FRAME_NS)
              for seq in range(5)]  # fmt: skip
    with running(service):
        assert wait_for(owns(redis_client, "cam"), 10)
        play(redis_client, service, frames)
    published = {message.seq: message for message in detections(redis_client)}
    assert sorted(published) == list(range(5)), "warm-up: every frame inferred"
    for seq in (3, 4):  # around its motion box, then around its track too
        assert pistols(list(published[seq].objects), truth), f"frame {seq}: the pistol, in frame pixels"
        assert "regions" in published[seq].timings_ms
    assert not any(published[seq].objects for seq in range(3)), "an empty room, no crops to mislead"
    metric = service.metrics.registry.get_sample_value
    assert metric("vigil_detector_regions_total", {"camera": "cam"}) >= 2
    assert metric("vigil_detector_region_detections_total", {"camera": "cam"}) >= 2
