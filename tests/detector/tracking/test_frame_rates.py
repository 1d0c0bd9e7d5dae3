"""Ages and windows in seconds: a tracker means the same at 5, 10 and 25 fps, and each camera's
tracks age by that camera's own frame times."""

from __future__ import annotations

import numpy as np
import pytest

from detector.tracking.iou_tracker import IoUTracker, MultiCameraTracker
from detector.tracking.tracks import TrackState
from shared.config import TrackerConfig
from shared.schemas import Detection

RATES = (5.0, 10.0, 25.0)
BOX = (100.0, 100.0, 140.0, 200.0)


Box = tuple[float, float, float, float]


def feed(tracker: IoUTracker, time_s: float, boxes: list[Box]) -> list[int | None]:
    """One frame at ``time_s``; the track ids of its detections."""
    out = tracker.update(np.array(boxes).reshape(-1, 4), np.full(len(boxes), 0.95), np.zeros(len(boxes)),
                         time_s=time_s)  # fmt: skip
    return [o.track_id for o in out]


def moving(x_px_per_s: float, time_s: float) -> Box:
    x = 100.0 + x_px_per_s * time_s
    return (x, 100.0, x + 40.0, 200.0)


@pytest.mark.parametrize("fps", RATES)
def test_a_track_unseen_for_max_age_s_is_removed_at_any_frame_rate(fps: float) -> None:
    tracker = IoUTracker(TrackerConfig(max_age_s=2.0))
    frames = [i / fps for i in range(int(10 * fps))]  # 10 s of frames
    seen_until_s = 1.0
    removed_at_s = None
    for time_s in frames:
        feed(tracker, time_s, [BOX] if time_s <= seen_until_s else [])
        if time_s > seen_until_s and removed_at_s is None and not tracker.tracks:
            removed_at_s = time_s
        if time_s <= seen_until_s + 2.0 - 1e-9:
            assert len(tracker.tracks) == 1, f"still kept (lost) at {time_s:.2f} s"
    assert removed_at_s is not None
    # removed at the first frame more than 2 s after the last sighting, whatever the rate
    assert seen_until_s + 2.0 < removed_at_s <= seen_until_s + 2.0 + 1 / fps + 1e-9


@pytest.mark.parametrize("fps", RATES)
def test_confirmation_counts_hits_within_confirm_s_at_any_frame_rate(fps: float) -> None:
    # the object is detected at 0.0, 0.4 and 0.8 s only: 3 hits within 1 s, confirmed at 0.8 s at
    # every rate, though at 25 fps 19 frames without it lie between the hits
    tracker = IoUTracker(TrackerConfig(min_hits=3, confirm_s=1.0, tentative_age_s=0.5))
    feed(tracker, 0.0, [])  # past the first frame (which confirms at once)
    start_s = 1 / fps
    hits_s = {round(start_s + k, 6) for k in (0.0, 0.4, 0.8)}
    confirmed_at_s = None
    for i in range(1, int(2 * fps)):
        time_s = i / fps
        ids = feed(tracker, time_s, [BOX] if round(time_s, 6) in hits_s else [])
        if ids and ids[0] is not None and confirmed_at_s is None:
            confirmed_at_s = time_s
    assert confirmed_at_s == pytest.approx(start_s + 0.8)


@pytest.mark.parametrize("fps", RATES)
def test_hits_spread_wider_than_confirm_s_do_not_confirm(fps: float) -> None:
    tracker = IoUTracker(TrackerConfig(min_hits=3, confirm_s=1.0, tentative_age_s=1.0))
    feed(tracker, 0.0, [])
    outcome = {}
    for i in range(1, int(2 * fps) + 1):
        time_s = i / fps
        hit = any(abs(time_s - t) < 1e-6 for t in (0.2, 0.8, 1.4))  # the first has left the window
        ids = feed(tracker, time_s, [BOX] if hit else [])
        if hit:
            outcome[round(time_s, 1)] = ids[0]
    assert outcome == {0.2: None, 0.8: None, 1.4: None}
    assert [t.state for t in tracker.tracks] == [TrackState.TENTATIVE]


@pytest.mark.parametrize("fps", RATES)
def test_a_moving_object_hidden_for_1_s_keeps_its_id_at_any_frame_rate(fps: float) -> None:
    # 100 px/s, hidden from 2 to 3 s: it reappears 100 px (2.5 box widths) on, where only the
    # velocity, learnt per second, puts the predicted box
    tracker = IoUTracker(TrackerConfig(max_age_s=2.0))
    ids = set()
    for i in range(int(5 * fps)):
        time_s = i / fps
        hidden = 2.0 <= time_s < 3.0
        out = feed(tracker, time_s, [] if hidden else [moving(100.0, time_s)])
        ids |= {track_id for track_id in out if track_id is not None}
    assert ids == {1}


def test_time_standing_still_or_going_back_ages_nothing() -> None:
    tracker = IoUTracker(TrackerConfig(max_age_s=0.5))
    feed(tracker, 10.0, [BOX])
    for time_s in (10.0, 9.0, 5.0, 10.4):  # a repeated stamp, a clock stepped back, then on
        feed(tracker, time_s, [])
    assert [t.state for t in tracker.tracks] == [TrackState.LOST]
    assert feed(tracker, 10.45, [BOX]) == [1]


def test_ids_never_leak_across_cameras_at_different_rates() -> None:
    trackers = MultiCameraTracker(TrackerConfig(max_age_s=1.0))
    person = Detection(label="person", class_id=0, score=0.95, box=BOX)
    ids: dict[str, set[int]] = {"fast": set(), "slow": set()}
    for i in range(50):  # 2 s at 25 fps on one camera, 10 s at 5 fps on the other, interleaved
        for camera, fps in (("fast", 25.0), ("slow", 5.0)):
            (out,) = trackers.update(camera, [person], time_s=1000.0 + i / fps)
            ids[camera].add(out.track_id)
    assert ids == {"fast": {1}, "slow": {1}}
    # the slow camera's later clock ages none of the fast camera's tracks, and the other way round
    trackers.update("slow", [], time_s=1000.0 + 60.0)
    assert trackers.track_ids("slow") == set()
    assert trackers.track_ids("fast") == {1}
    (again,) = trackers.update("fast", [person], time_s=1000.0 + 50 / 25.0)
    assert again.track_id == 1


def test_old_frame_counts_are_refused_naming_the_new_field() -> None:
    with pytest.raises(ValueError, match="set max_age_s"):
        TrackerConfig(max_age=30)
