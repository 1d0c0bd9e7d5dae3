"""bench/mot.py's noise variants of MOT detections: deterministic for a seed, and as strong as
their names say."""

from __future__ import annotations

import numpy as np
import pytest

from bench.mot import VARIANTS, Noise, Sequence, load_sequence, sampled, with_noise
from detector.boxes import iou_matrix_np
from tests.support.data import data_dir


@pytest.fixture(scope="module")
def campus() -> Sequence:
    return load_sequence(data_dir() / "mot" / "TUD-Campus")


def detections(seq: Sequence) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.concatenate([seq.detections[f][0] for f in range(1, seq.frames + 1)])
    scores = np.concatenate([seq.detections[f][1] for f in range(1, seq.frames + 1)])
    return boxes, scores


@pytest.mark.parametrize("noise", VARIANTS, ids=[n.name for n in VARIANTS])
def test_the_same_seed_gives_the_same_detections(campus: Sequence, noise: Noise) -> None:
    first, again = with_noise(campus, noise, seed=7), with_noise(campus, noise, seed=7)
    for frame in range(1, campus.frames + 1):
        np.testing.assert_array_equal(first.detections[frame][0], again.detections[frame][0])
        np.testing.assert_array_equal(first.detections[frame][1], again.detections[frame][1])


def test_another_seed_gives_other_noise(campus: Sequence) -> None:
    noise = Noise("drop30", drop=0.3)
    counts = {len(detections(with_noise(campus, noise, seed))[1]) for seed in range(4)}
    assert len(counts) > 1


def test_clean_is_the_sequence_as_published(campus: Sequence) -> None:
    assert with_noise(campus, Noise("clean"), seed=3) is campus


def test_each_variant_is_as_strong_as_its_name(campus: Sequence) -> None:
    boxes, scores = detections(campus)
    kept = len(detections(with_noise(campus, Noise("drop30", drop=0.3)))[1]) / len(scores)
    assert 0.62 < kept < 0.78  # 321 detections: 70 % kept, give or take 4 standard deviations
    _, fp_scores = detections(with_noise(campus, Noise("fp10", false_positives=0.1)))
    assert len(fp_scores) == len(scores) + round(0.1 * len(scores))
    assert set(fp_scores.tolist()) <= set(scores.tolist())  # invented boxes score like real ones
    jittered, _ = detections(with_noise(campus, Noise("jitter5", jitter=0.05)))
    moved = np.abs(jittered - boxes) / (boxes[:, 3:4] - boxes[:, 1:2])
    assert jittered.shape == boxes.shape and 0.02 < np.median(moved) < 0.08


def test_occlusions_hide_whole_people_for_a_short_time(campus: Sequence) -> None:
    hidden = with_noise(campus, Noise("occlusion", occlusions=True))
    removed_frames = 0
    for frame in range(1, campus.frames + 1):
        before, after = campus.detections[frame][0], hidden.detections[frame][0]
        assert len(after) <= len(before)
        if len(after) < len(before):
            removed_frames += 1
            # whatever is left was in the original, untouched
            assert (iou_matrix_np(after, before).max(axis=1, initial=0) == 1.0).all()
    # 8 people, each hidden once for 0.3–0.8 s (8–20 frames at 25 fps), overlapping in time
    assert 8 <= removed_frames <= 71


def test_sampling_keeps_the_noise_of_the_full_rate_variant(campus: Sequence) -> None:
    noisy = with_noise(campus, Noise("all", 0.3, 0.05, 0.1, True))
    slow = sampled(noisy, 5)
    assert slow.frame_rate == 5.0 and slow.frames == 15
    assert slow.time_s(2) == pytest.approx(0.2)
    np.testing.assert_array_equal(slow.detections[2][0], noisy.detections[6][0])
