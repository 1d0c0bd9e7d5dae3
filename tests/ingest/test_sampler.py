import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.sampler import FpsSampler, encode, fit_size, resize


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
def test_kept_frames_are_never_closer_than_a_period(times: list[float]) -> None:
    times = sorted(times)
    out = kept(FpsSampler(4), times)
    assert out[0] == times[0]
    assert all(b - a >= 0.9 * 250 - 1e-6 for a, b in itertools.pairwise(out))


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
