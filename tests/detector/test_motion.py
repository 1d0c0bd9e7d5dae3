"""Motion detection and the motion gate on real pixels: a still room with sensor noise, a pistol
from the validation set pasted into it."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import pytest
import torch

from detector.gate import GateDecision, MotionGate
from detector.models.box_ops import iou_matrix
from detector.motion import MotionDetector
from shared.config import MotionConfig
from shared.errors import DecodeError
from shared.schemas import Box, Frame
from tests.detector.scenes import FRAME_NS, SIZE, noisy_frame, room, with_pistol

WARMUP = MotionConfig().warmup_frames


def decide_all(gate: MotionGate, frames: Iterable[Frame]) -> list[GateDecision]:
    return [gate.decide(frame) for frame in frames]


def still_room(
    count: int, *, first: int = 0, frame_ns: int = FRAME_NS, size: tuple[int, int] = SIZE
) -> list[Frame]:
    image = room(size)
    return [noisy_frame("cam", seq, image, ts_ns=seq * frame_ns) for seq in range(first, first + count)]


def inferred(decisions: list[GateDecision], first: int = 0) -> list[int]:
    return [first + index for index, decision in enumerate(decisions) if decision.infer]


def covers(boxes: Iterable[Box], target: Box, *, least_iou: float = 0.5) -> bool:
    ious = iou_matrix(torch.tensor(list(boxes)).reshape(-1, 4), torch.tensor([target]))
    return bool(ious.numel() and ious.max() >= least_iou)


def test_a_still_scene_skips_at_least_90_percent_of_its_frames() -> None:
    """20 s at 10 fps: inferred are the warm-up frames and one every max_interval_s (2 s), no more."""
    decisions = decide_all(MotionGate(MotionConfig()), still_room(200, frame_ns=FRAME_NS // 2))
    skipped = sum(not decision.infer for decision in decisions)
    assert skipped / len(decisions) >= 0.9
    assert {decision.reason for decision in decisions} == {"warmup", "interval", None}, "no motion in noise"


@pytest.mark.parametrize("max_interval_s", [2.0, 1.0])
def test_a_full_inference_comes_every_max_interval_s_of_frame_time(max_interval_s: float) -> None:
    decisions = decide_all(MotionGate(MotionConfig(max_interval_s=max_interval_s)), still_room(60))
    step = round(max_interval_s * 1e9 / FRAME_NS)
    assert inferred(decisions) == [*range(WARMUP), *range(WARMUP - 1 + step, 60, step)]
    assert all(decisions[seq].reason == "interval" for seq in range(WARMUP - 1 + step, 60, step))


@pytest.mark.parametrize(("size", "codec"), [(SIZE, "jpeg"), ((1280, 720), "jpeg"), (SIZE, "raw")])
def test_a_pistol_pasted_into_the_still_scene_is_motion_at_its_first_frame(
    size: tuple[int, int], codec: str
) -> None:
    image, pistol_box = with_pistol(room(size))
    gate = MotionGate(MotionConfig())
    before = decide_all(gate, (noisy_frame("cam", seq, room(size), ts_ns=seq * FRAME_NS, codec=codec)
                                for seq in range(12)))  # fmt: skip
    assert inferred(before) == list(range(WARMUP)), "nothing moved: skipped after the warm-up"
    pasted = gate.decide(noisy_frame("cam", 12, image, ts_ns=12 * FRAME_NS, codec=codec))
    assert pasted.reason == "motion"
    assert pasted.motion is not None and covers(pasted.motion.boxes, pistol_box), "boxes in frame pixels"


def test_resumed_after_a_gap_the_clock_going_back_a_new_sequence_or_size_means_a_new_warmup() -> None:
    gate = MotionGate(MotionConfig())
    assert inferred(decide_all(gate, still_room(10, first=100)), first=100) == list(range(100, 100 + WARMUP))
    resumptions = {  # each after the one before; seq 100-109 were at 20-21.8 s
        "a gap of more than max_interval_s": still_room(6, first=120),
        "the clock going back": [
            noisy_frame("cam", 126 + i, room(), ts_ns=(50 + i) * FRAME_NS) for i in range(6)
        ],
        "the sequence restarting": [
            noisy_frame("cam", i, room(), ts_ns=(56 + i) * FRAME_NS) for i in range(6)
        ],
        "another size": [
            noisy_frame("cam", 6 + i, room((480, 270)), ts_ns=(62 + i) * FRAME_NS) for i in range(6)
        ],
    }
    for what, frames in resumptions.items():
        reasons = [decision.reason for decision in decide_all(gate, frames)]
        assert reasons == ["warmup"] * WARMUP + [None], what


def test_change_under_a_mask_polygon_is_ignored() -> None:
    x1, y1, x2, y2 = with_pistol(room())[1]
    left, top, right, bottom = (
        (x1 - 10) / SIZE[0],
        (y1 - 10) / SIZE[1],
        (x2 + 10) / SIZE[0],
        (y2 + 10) / SIZE[1],
    )
    over_pistol = ((left, top), (right, top), (right, bottom), (left, bottom))
    elsewhere = ((0.0, 0.0), (0.2, 0.0), (0.2, 0.2))
    for masks, expected in (((over_pistol,), None), ((elsewhere,), "motion")):
        gate = MotionGate(MotionConfig(masks=masks))
        decide_all(gate, still_room(8))
        assert (
            gate.decide(noisy_frame("cam", 8, with_pistol(room())[0], ts_ns=8 * FRAME_NS)).reason == expected
        )


def test_a_corrupt_frame_raises_and_leaves_the_gate_as_it_was() -> None:
    gate = MotionGate(MotionConfig())
    decide_all(gate, still_room(8))
    good = noisy_frame("cam", 8, room(), ts_ns=8 * FRAME_NS)
    for data in (b"\xff\xd8 not really a jpeg", good.data[: len(good.data) // 3], b""):
        with pytest.raises(DecodeError):
            gate.decide(Frame("cam", 8, 8 * FRAME_NS, 0, *SIZE, "jpeg", data))
    assert gate.decide(good).reason is None, "no new warm-up, no reset background"
    assert gate.decide(noisy_frame("cam", 9, with_pistol(room())[0], ts_ns=9 * FRAME_NS)).reason == "motion"


def test_detections_hold_every_frame_inferred_for_hold_s() -> None:
    gate = MotionGate(MotionConfig(hold_s=1.0, max_interval_s=2.0))
    frames = still_room(30)
    decide_all(gate, frames[:8])
    gate.hold(frames[7].ts_ns)
    reasons = [decision.reason for decision in decide_all(gate, frames[8:])]
    assert reasons[:4] == ["hold"] * 4, "frames 8-11: less than 1 s after frame 7"
    assert reasons[4:13] == [None] * 9
    assert reasons[13] == "interval", "frame 21: 2 s after the last inferred frame (11)"


def test_a_camera_with_gating_off_infers_every_frame_without_decoding_it() -> None:
    gate = MotionGate(MotionConfig(enabled=False))
    corrupt = Frame("cam", 0, 0, 0, *SIZE, "jpeg", b"not a jpeg")
    assert [gate.decide(frame).reason for frame in [corrupt, *still_room(10)]] == ["off"] * 11


def test_lights_going_off_restart_the_background() -> None:
    detector = MotionDetector(MotionConfig())
    for frame in still_room(5):
        detector.detect(frame)
    dark = cv2.convertScaleAbs(room(), alpha=0.4)
    lights_off = detector.detect(noisy_frame("cam", 5, dark, ts_ns=5 * FRAME_NS))
    assert lights_off.changed > 0.7 and lights_off.boxes == ((0.0, 0.0, *map(float, SIZE)),)
    assert detector.detect(noisy_frame("cam", 6, dark, ts_ns=6 * FRAME_NS)).boxes == (), "the new background"
