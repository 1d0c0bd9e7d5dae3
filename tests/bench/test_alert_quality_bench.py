"""``bench/alert_quality.py``'s scoring on hand-made runs: which appearances an alert covers, how
late, what is a false alert, and frame-level box recall and precision; its clips cut from one-by-one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.alert_quality import CLIP_NAMES, CUTS, TEST_ONLY, Appearance, Run, Truth, cut, score
from bench.clips import BACKGROUND
from shared.schemas import AlertEvent, Detection, Detections

PISTOL = (100.0, 100.0, 140.0, 140.0)
TRUTH = Truth(  # 1280 px wide, 10 fps; two appearances: frames 0-9 and 20-29
    1280, 720, 10, {f: [PISTOL] for f in (*range(10), *range(20, 30))}, [Appearance(0, 9), Appearance(20, 29)]
)


def started(seq: int, box: tuple[float, float, float, float], width: int = 640) -> AlertEvent:
    return AlertEvent(
        event_id=f"e{seq}", kind="started", rule="gun", severity="critical", camera="c", label="pistol",
        score=0.8, box=box, box_norm=(0, 0, 0, 0), frame_width=width, frame_height=width * 9 // 16,
        track_id=1, first_seen_ns=0, ts_ns=0, seq=seq,
    )  # fmt: skip


def detections(seq: int, *objects: tuple[tuple[float, float, float, float], float]) -> Detections:
    found = tuple(Detection("pistol", 0, s, b, 1) for b, s in objects)
    return Detections("c", seq, 0, 640, 360, "m", found)


HALF = (50.0, 50.0, 70.0, 70.0)
"""The pistol in the 640-px frames the detector saw."""


def test_an_overlapping_alert_during_an_appearance_covers_it_and_a_stray_one_is_false() -> None:
    pts = {seq: seq * 100 for seq in range(40)}  # one frame of the clip per seq
    alerts = [(started(3, HALF), 0.25), (started(15, HALF), 0.1), (started(22, (300, 300, 320, 320)), 0.1)]
    result = score("clip", Run(alerts, pts, []), TRUTH, 4.0, 5, 0.6)
    assert (result.appearances, result.alerted, result.false_alerts) == (2, 1, 2)
    assert result.delays_s == [pytest.approx(0.3 + 0.25)]
    assert result.detail == [
        "#0 ~40 px tall: not seen, alerted after 0.55 s",
        "#1 ~40 px tall: not seen, no alert",
    ]


def test_box_recall_and_precision_count_detections_at_the_rules_score() -> None:
    pts = {seq: seq * 100 for seq in range(40)}
    messages = [
        detections(0, (HALF, 0.9)),  # a hit
        detections(1, (HALF, 0.5)),  # below the rule's score: a miss, not a false box
        detections(2, (HALF, 0.9), ((200, 200, 220, 220), 0.7)),  # a hit and a false box
        detections(12, ((200, 200, 220, 220), 0.7)),  # a false box where no pistol is
    ]
    result = score("clip", Run([], pts, messages), TRUTH, 4.0, 5, 0.6)
    assert (result.true_pos, result.false_pos, result.false_neg) == (2, 2, 1)
    assert (result.seen, result.frames_reported, result.frames_ingested) == (1, 4, 40)


def test_on_footage_without_pistols_every_alert_is_false() -> None:
    result = score("vtest", Run([(started(5, HALF), 0.1)], {5: 500}, []), None, 80.0, 5, 0.6)
    assert (result.appearances, result.alerted, result.false_alerts) == (0, 0, 1)


def test_one_by_one_is_cut_into_a_tuning_half_and_a_test_only_half() -> None:
    assert (CUTS["one-by-one-1"], CUTS["one-by-one-2"]) == (range(0, 697), range(697, 1394))
    assert set(TEST_ONLY) == {"vtest", "one-by-one-2"} and "one-by-one-1" in CLIP_NAMES


def frames_of(path: Path, stop: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < stop and (read := capture.read())[0]:
        frames.append(read[1].astype(np.float32))
    capture.release()
    return frames


@pytest.mark.skipif(not BACKGROUND.is_file(), reason="shared/data is not checked out")
def test_a_cut_holds_exactly_the_frames_of_its_range(tmp_path: Path) -> None:
    """The last three frames of the tuning half: each cut frame is nearest its source frame."""
    got = frames_of(cut(BACKGROUND, range(694, 697), tmp_path / "cut.mp4"), 10)
    source = frames_of(BACKGROUND, 700)
    assert len(got) == 3
    nearest = [690 + int(np.argmin([np.abs(frame - s).mean() for s in source[690:700]])) for frame in got]
    assert nearest == [694, 695, 696]
