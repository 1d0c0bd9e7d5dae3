import itertools
import random
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.sampler import FpsSampler, StreamClock, encode, fit_size, resize


def kept(sampler: FpsSampler, times_ms: list[float]) -> list[float]:
    return [t for t in times_ms if sampler.take(t)]


@pytest.mark.parametrize(("source_fps", "target_fps"), [(25, 5), (30, 7), (10, 3), (25, 25), (12.5, 5)])
def test_sampled_rate_matches_target(source_fps: float, target_fps: float) -> None:
    seconds = 60
    times = [i * 1000 / source_fps for i in range(int(seconds * source_fps))]
    out = kept(FpsSampler(target_fps), times)
    assert len(out) / seconds == pytest.approx(min(target_fps, source_fps), rel=0.02)


def test_25_to_5_takes_every_fifth_frame() -> None:
    times = [i * 40.0 for i in range(50)]
    assert kept(FpsSampler(5), times) == times[::5]


def test_jittery_timestamps_keep_the_phase() -> None:
    jitter = [0, 3, -2, 2, -3, 1, -1]
    times = [i * 40.0 + jitter[i % 7] for i in range(100)]
    out = kept(FpsSampler(5), times)
    assert len(out) == 20
    assert all(190 <= b - a <= 210 for a, b in itertools.pairwise(out))


def test_gap_does_not_burst_and_backwards_time_restarts() -> None:
    sampler = FpsSampler(5)
    assert kept(sampler, [0, 200, 400]) == [0, 200, 400]
    # a 10 s gap: take the next frame, then keep the period from there (no catch-up burst)
    assert kept(sampler, [10_400, 10_440, 10_480, 10_600]) == [10_400, 10_600]
    # time going backwards (a stream reset) starts a new phase at once
    assert kept(sampler, [50, 90, 250]) == [50, 250]


@given(st.lists(st.floats(0, 1e7, allow_nan=False), min_size=1, max_size=200))
def test_kept_frames_are_never_closer_than_half_a_period(times: list[float]) -> None:
    times = sorted(times)
    out = kept(FpsSampler(4), times)
    assert out[0] == times[0]
    assert all(b - a >= 0.5 * 250 - 1e-6 for a, b in itertools.pairwise(out))


def jittered(source_fps: float, seconds: float, *, jitter: float = 0.15, seed: int = 0) -> list[float]:
    """Timestamps of a ``source_fps`` stream, each off its grid by up to ±``jitter`` of a period
    (RTP clocks: an RTSP camera at 10 fps gave frame gaps of 83-103 ms)."""
    rng = random.Random(seed)
    period = 1000 / source_fps
    return [i * period + rng.uniform(-jitter, jitter) * period for i in range(int(seconds * source_fps))]


@pytest.mark.parametrize("source_fps", [10, 25, 30])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jittered_source_at_its_own_fps_loses_no_frame(source_fps: float, seed: int) -> None:
    times = jittered(source_fps, 60, seed=seed)
    out = kept(FpsSampler(source_fps), times)
    skipped = len(times) - len(out)
    assert skipped <= 0.01 * len(times), f"{skipped} of {len(times)} skipped"


@pytest.mark.parametrize("source_fps", [10, 25, 30])
@pytest.mark.parametrize("divisor", [2, 3, 5])
def test_jittered_source_sampled_to_a_fraction_of_its_fps(source_fps: float, divisor: int) -> None:
    seconds = 60
    times = jittered(source_fps, seconds, seed=divisor)
    target_fps = source_fps / divisor
    out = kept(FpsSampler(target_fps), times)
    assert len(out) / seconds == pytest.approx(target_fps, rel=0.01)
    period = 1000 / target_fps
    steps = [b - a for a, b in itertools.pairwise(out)]
    assert sum(steps) / len(steps) == pytest.approx(period, rel=0.01), "1/fps apart on average"
    assert min(steps) >= period - 1000 / source_fps, "never a source frame closer than the period allows"


def test_the_source_period_is_estimated_from_the_timestamps() -> None:
    sampler = FpsSampler(10)
    assert sampler.source_period_ms is None
    kept(sampler, jittered(25, 2))
    assert sampler.source_period_ms == pytest.approx(40, abs=6)


def test_jittered_stream_after_a_gap_or_a_loop_does_not_burst() -> None:
    sampler = FpsSampler(10)
    before = jittered(10, 5, seed=3)
    after_gap = [t + 60_000 for t in jittered(10, 5, seed=4)]  # the camera was away for 55 s
    looped = jittered(10, 5, seed=5)  # a file starting again: time goes back to 0
    out = kept(sampler, before + after_gap + looped)
    assert len(out) >= 0.99 * len(before + after_gap + looped)
    assert all(b - a >= 50 for a, b in itertools.pairwise(out) if b > a), "no two frames within half a period"


def test_a_repeated_pts_keeps_the_stream_clock_on_pts() -> None:
    """FFmpeg gives an RTSP stream's first two frames both pts 0: that must not switch the clock to
    wall time, or the frames OpenCV buffered while probing arrive "at once" and are skipped."""
    clock = StreamClock(offset_ms=1000)
    assert [clock.time_ms(pts) for pts in (0, 0, 100, 200, 200, 300)] == [1000, 1000, 1100, 1200, 1200, 1300]


def test_a_stuck_pts_falls_back_to_the_wall_clock() -> None:
    clock = StreamClock()
    times = [clock.time_ms(0) for _ in range(StreamClock.STUCK_FRAMES + 1)]
    assert times[: StreamClock.STUCK_FRAMES] == [0.0] * StreamClock.STUCK_FRAMES
    time.sleep(0.05)
    assert clock.time_ms(0) >= 45, "wall-clock time since the pts got stuck"
    assert clock.time_ms(10_000) < 1000, "and it stays on the wall clock"


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [((1280, 720), 640, (640, 360)), ((720, 1280), 640, (360, 640)), ((320, 240), 640, (320, 240)),
     ((1920, 1080), None, (1920, 1080)), ((1001, 17), 500, (500, 8))],
)  # fmt: skip
def test_fit_size_keeps_aspect(
    size: tuple[int, int], max_side: int | None, expected: tuple[int, int]
) -> None:
    assert fit_size(*size, max_side) == expected


def test_resize_and_encode() -> None:
    image = np.random.default_rng(0).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    small = resize(image, 640)
    assert small.shape == (360, 640, 3)
    assert resize(image, None) is image
    raw = encode(small, "raw", 90)
    assert raw == small.tobytes()
    jpeg = encode(small, "jpeg", 90)
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) < len(raw)
