import random

import pytest

from shared.backoff import Backoff


def test_full_jitter_delays_are_exact_for_a_seeded_source() -> None:
    backoff = Backoff(base=0.5, cap=4.0, rng=random.Random(7))
    expected_rng = random.Random(7)
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    delays = [backoff.delay(attempt) for attempt in range(6)]
    assert delays == [expected_rng.uniform(0, c) for c in ceilings]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))


def test_no_jitter_is_the_ceiling_and_huge_attempts_do_not_overflow() -> None:
    backoff = Backoff(base=0.1, cap=30.0, jitter="none")
    assert [backoff.delay(a) for a in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert backoff.delay(10_000) == 30.0


def test_invalid_policy_is_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base=2.0, cap=1.0)
