"""DynamicBatcher: closes at max_batch or max_wait, newest frame per camera, stale frames dropped."""

from __future__ import annotations

from collections import Counter

import pytest

from detector.batching import DynamicBatcher
from shared.schemas import Frame

NOW_NS = 1_000_000_000_000


def frame(camera: str, seq: int, age_s: float = 0.0) -> Frame:
    return Frame(camera, seq, NOW_NS - int(age_s * 1e9), seq * 200, 64, 48, "jpeg", b"x")


@pytest.fixture
def drops() -> Counter:
    return Counter()


def batcher(drops: Counter, *, max_batch: int = 4, max_wait_s: float = 0.05) -> DynamicBatcher:
    return DynamicBatcher(
        max_batch=max_batch, max_wait_s=max_wait_s, max_frame_age_s=2.0,
        on_drop=lambda camera, reason: drops.update([(camera, reason)]),
    )  # fmt: skip


def test_closes_at_max_batch(drops: Counter) -> None:
    b = batcher(drops, max_batch=3)
    b.add(frame("a", 1), now=10.0, now_ns=NOW_NS)
    b.add(frame("b", 1), now=10.001, now_ns=NOW_NS)
    assert not b.ready(10.002)
    b.add(frame("c", 1), now=10.002, now_ns=NOW_NS)
    assert b.ready(10.002), "full before max_wait"
    assert [p.frame.camera for p in b.take(now_ns=NOW_NS)] == ["a", "b", "c"]
    assert len(b) == 0 and b.wait_s(10.003) is None


def test_closes_at_max_wait_after_its_first_frame(drops: Counter) -> None:
    b = batcher(drops, max_batch=8, max_wait_s=0.05)
    b.add(frame("a", 1), now=10.0, now_ns=NOW_NS)
    b.add(frame("b", 1), now=10.04, now_ns=NOW_NS)
    assert b.wait_s(10.02) == pytest.approx(0.03)
    assert not b.ready(10.049)
    assert b.ready(10.05)
    assert len(b.take(now_ns=NOW_NS)) == 2


def test_newest_frame_per_camera_wins(drops: Counter) -> None:
    b = batcher(drops)
    b.add(frame("a", 1), now=10.0, now_ns=NOW_NS)
    b.add(frame("a", 2), now=10.01, now_ns=NOW_NS)
    b.add(frame("a", 1), now=10.02, now_ns=NOW_NS)  # a late duplicate of an older frame
    [pending] = b.take(now_ns=NOW_NS)
    assert pending.frame.seq == 2
    assert pending.arrived == 10.0, "the camera has waited since its first pending frame"
    assert drops == {("a", "superseded"): 2}


def test_stale_frames_are_dropped_on_arrival_and_while_waiting(drops: Counter) -> None:
    b = batcher(drops)
    b.add(frame("old", 1, age_s=3.0), now=10.0, now_ns=NOW_NS)
    assert len(b) == 0
    b.add(frame("a", 1, age_s=1.5), now=10.0, now_ns=NOW_NS)
    assert b.take(now_ns=NOW_NS + int(1e9)) == []  # 2.5 s old when its turn came
    assert drops == {("old", "stale"): 1, ("a", "stale"): 1}


def test_more_cameras_than_max_batch_longest_waiting_first(drops: Counter) -> None:
    b = batcher(drops, max_batch=2)
    for index, camera in enumerate("dcba"):
        b.add(frame(camera, 1), now=10.0 + index / 100, now_ns=NOW_NS)
    assert [p.frame.camera for p in b.take(now_ns=NOW_NS)] == ["d", "c"]
    assert [p.frame.camera for p in b.take(now_ns=NOW_NS)] == ["b", "a"]


def test_forget_counts_a_lost_camera(drops: Counter) -> None:
    b = batcher(drops)
    b.add(frame("a", 1), now=10.0, now_ns=NOW_NS)
    b.forget("a")
    b.forget("never-seen")
    assert len(b) == 0 and drops == {("a", "not_owned"): 1}
