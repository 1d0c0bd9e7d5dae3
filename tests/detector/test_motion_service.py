"""Motion gating in the real DetectorService: real Redis, the shipped pistol detector on the CPU, a
still room, and a pistol from the validation set pasted into it. Frames are pushed one at a time
(each waits until the service has published, skipped or dropped the one before), so which frames
reach the model depends on the gate alone, not on the batcher's slot."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import pytest
import redis
import torch

from alerts.rules import RuleEngine
from detector.models.box_ops import iou_matrix
from detector.runner import DetectorRunner
from detector.service import DetectorService
from shared.config import AlertsConfig, DetectorConfig, MotionConfig
from shared.schemas import Frame
from tests.detector.conftest import push
from tests.detector.scenes import FRAME_NS, noisy_frame, room, with_pistol
from tests.detector.test_service import detections, detector_config, owns
from tests.support.services import running, wait_for

pytestmark = pytest.mark.slow
WARMUP = MotionConfig().warmup_frames


@pytest.fixture(scope="module")
def shipped() -> DetectorRunner:
    return DetectorRunner(engine="torch")  # the engine does not matter here, and auto measures at start


def played_config(**overrides: object) -> DetectorConfig:
    """The service's config for scenes played frame by frame: their frames carry timestamps from
    the scene's start, so on a loaded machine the later ones would be older than the default
    ``max_frame_age_s`` (2 s) by the time they are pushed, and skipped as stale."""
    return detector_config(max_frame_age_s=60.0, **overrides)


def handled(service: DetectorService, camera: str) -> float:
    """Frames the service is done with: published, skipped or dropped."""
    registry = service.metrics.registry
    total = 0.0
    for metric in ("vigil_detector_frames_processed_total", "vigil_detector_frames_skipped_total",
                   "vigil_detector_frames_dropped_total"):  # fmt: skip
        for family in registry.collect():
            total += sum(s.value for s in family.samples if s.name == metric and s.labels["camera"] == camera)
    return total


def skipped(service: DetectorService, camera: str) -> float:
    labels = {"camera": camera, "reason": "no_motion"}
    return service.metrics.registry.get_sample_value("vigil_detector_frames_skipped_total", labels) or 0.0


def play(client: redis.Redis, service: DetectorService, frames: Sequence[Frame]) -> None:
    """Push each frame once the service has handled the one before."""
    camera = frames[0].camera
    done = handled(service, camera)
    for frame in frames:
        push(client, frame)
        done += 1
        assert wait_for(lambda n=done: handled(service, camera) >= n, 10), f"frame {frame.seq} handled"


def scene(seqs: range, *, pistol: bool, start_ns: int) -> list[Frame]:
    image = with_pistol(room())[0] if pistol else room()
    return [noisy_frame("cam", seq, image, ts_ns=start_ns + seq * FRAME_NS) for seq in seqs]


def pistol_seen(box: tuple[float, ...]) -> bool:
    return bool(iou_matrix(torch.tensor([box]), torch.tensor([with_pistol(room())[1]])).max() >= 0.3)


def test_a_still_room_is_skipped_and_a_pasted_pistol_is_detected_in_its_first_frame(
    redis_client: redis.Redis, shipped: DetectorRunner
) -> None:
    service = DetectorService(played_config(), ["cam"], client=redis_client, runner=shipped)
    start_ns = time.time_ns()
    with running(service):
        assert wait_for(owns(redis_client, "cam"), 10)
        play(redis_client, service, scene(range(30), pistol=False, start_ns=start_ns))
        play(redis_client, service, scene(range(30, 36), pistol=True, start_ns=start_ns))
    published = {message.seq: message for message in detections(redis_client)}
    assert sorted(published) == [0, 1, 2, 3, 4, 14, 24, 30, 31, 32, 33, 34, 35], (
        "warm-up, one every 2 s, then the pistol: motion, and held open while it is detected"
    )
    assert skipped(service, "cam") == 30 - 7
    assert not any(published[seq].objects for seq in range(30) if seq in published), "an empty room"
    assert any(obj.label == "pistol" and pistol_seen(obj.box) for obj in published[30].objects), (
        "detected in the very frame it appeared"
    )


def test_a_still_pistol_keeps_its_alert_open_between_periodic_inferences(
    redis_client: redis.Redis, shipped: DetectorRunner
) -> None:
    """No hold (hold_s 0), a background that learns fast: once the pistol is part of the background
    (after 2 s) only the inference every max_interval_s (2 s) sees it, and the default rule's
    end_after_s (3 s) must not run out in between."""
    config = played_config(motion=MotionConfig(hold_s=0, background_alpha=0.2))
    service = DetectorService(config, ["cam"], client=redis_client, runner=shipped)
    start_ns = time.time_ns()
    with running(service):
        assert wait_for(owns(redis_client, "cam"), 10)
        play(redis_client, service, scene(range(6), pistol=False, start_ns=start_ns))
        play(redis_client, service, scene(range(6, 46), pistol=True, start_ns=start_ns))
    messages = sorted(detections(redis_client), key=lambda message: message.seq)
    assert skipped(service, "cam") >= 20, "the still pistol became background"
    engine = RuleEngine(AlertsConfig().rules, {})
    events = []
    for message in messages:  # the alert service sweeps silent cameras until the next message comes
        events += engine.sweep(message.ts_ns - 1) + engine.process(message)
    assert [event.kind for event in events] == ["started"], "one alert, open for the 8 s the pistol stays"


def test_a_camera_gained_again_or_resuming_is_inferred_and_a_corrupt_frame_breaks_nothing(
    redis_client: redis.Redis, shipped: DetectorRunner
) -> None:
    start_ns = time.time_ns()
    service = DetectorService(played_config(), ["cam"], client=redis_client, runner=shipped)
    with running(service):
        assert wait_for(owns(redis_client, "cam"), 10)
        play(redis_client, service, scene(range(10), pistol=False, start_ns=start_ns))
        corrupt = scene(range(10, 11), pistol=False, start_ns=start_ns)[0]
        corrupt = Frame(
            "cam", 10, corrupt.ts_ns, 0, corrupt.width, corrupt.height, "jpeg", b"\xff\xd8 broken"
        )
        play(redis_client, service, [corrupt, *scene(range(11, 13), pistol=False, start_ns=start_ns)])
        assert (
            service.metrics.registry.get_sample_value(
                "vigil_detector_frames_dropped_total", {"camera": "cam", "reason": "decode_failed"}
            )
            == 1
        )
        play(redis_client, service, scene(range(30, 37), pistol=False, start_ns=start_ns))  # 3.4 s later
    again = DetectorService(played_config(), ["cam"], client=redis_client, runner=shipped)
    with running(again):  # a restart: the lease is this instance's again
        assert wait_for(owns(redis_client, "cam"), 10)
        assert wait_for(lambda: handled(again, "cam") == 1, 10), "it starts at the stream's newest entry"
        play(redis_client, again, scene(range(37, 44), pistol=False, start_ns=start_ns))
    published = [message.seq for message in detections(redis_client)]
    assert published == [0, 1, 2, 3, 4, 30, 31, 32, 33, 34, 36, 37, 38, 39, 40], (
        "warm-up; nothing after the corrupt frame; warm-up after a gap; warm-up after the restart"
    )


def test_a_camera_of_its_own_motion_config_is_gated_by_it(
    redis_client: redis.Redis, shipped: DetectorRunner
) -> None:
    service = DetectorService(
        played_config(), ["cam", "off"], client=redis_client, runner=shipped,
        motion={"off": MotionConfig(enabled=False)},
    )  # fmt: skip
    start_ns = time.time_ns()
    with running(service):
        assert wait_for(lambda: owns(redis_client, "cam")() and owns(redis_client, "off")(), 10)
        still = scene(range(8), pistol=False, start_ns=start_ns)
        play(redis_client, service, still)
        play(redis_client, service, [replace(frame, camera="off") for frame in still])
    published = [(message.camera, message.seq) for message in detections(redis_client)]
    assert published == [("cam", seq) for seq in range(WARMUP)] + [("off", seq) for seq in range(8)]
