"""``bench/clips.py``: the small-object clip is the same for the same seed, and its ground truth is
where the pistols were pasted."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bench.clips import BACKGROUND, FPS, HEIGHTS, SIZE, make_clip

pytestmark = pytest.mark.skipif(not BACKGROUND.is_file(), reason="shared/data is not checked out")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clips")
    paths = folder / "a.mp4", folder / "b.mp4"
    for path in paths:
        make_clip(path, appearances=3, appear_s=0.8, gap_s=0.4, seed=7)
    return paths


def test_the_same_seed_makes_the_same_clip(clips: tuple[Path, Path]) -> None:
    first, second = clips
    assert first.read_bytes() == second.read_bytes()
    truth = json.loads(first.with_suffix(".json").read_text())
    assert {**truth, "video": None} == {**json.loads(second.with_suffix(".json").read_text()), "video": None}


def test_the_ground_truth_holds_small_pistols_in_the_frame_with_gaps_between(
    clips: tuple[Path, Path],
) -> None:
    truth = json.loads(clips[0].with_suffix(".json").read_text())
    assert (truth["width"], truth["height"], truth["fps"]) == (*SIZE, FPS)
    assert len(truth["frames"]) == truth["frame_count"] == 4 + 3 * (8 + 4)
    appearances = truth["appearances"]
    for number, appearance in enumerate(appearances):
        assert appearance["last_frame"] - appearance["first_frame"] + 1 == 8
        boxes = [b["box"] for f in truth["frames"] for b in f if b["appearance"] == number]
        assert len(boxes) == 8
        for x1, y1, x2, y2 in boxes:
            assert 0 <= x1 < x2 <= SIZE[0] and 0 <= y1 < y2 <= SIZE[1]
            assert HEIGHTS[0] <= y2 - y1 <= HEIGHTS[1]
            assert [x2 - x1, y2 - y1] == appearance["size"]
    for earlier, later in itertools.pairwise(appearances):
        assert later["first_frame"] - earlier["last_frame"] - 1 == 4
    assert truth["frames"][0] == [] and truth["frames"][-1] == []


def test_the_boxes_are_where_the_video_differs_from_the_background(clips: tuple[Path, Path]) -> None:
    truth = json.loads(clips[0].with_suffix(".json").read_text())
    clip, background = cv2.VideoCapture(str(clips[0])), cv2.VideoCapture(str(BACKGROUND))
    for boxes in truth["frames"]:
        (ok, frame), (ok_background, scene) = clip.read(), background.read()
        assert ok and ok_background
        plain = cv2.resize(scene, SIZE).astype(np.int16)
        change = np.abs(frame.astype(np.int16) - plain).mean(axis=2)
        mask = np.zeros(change.shape, bool)
        for item in boxes:
            x1, y1, x2, y2 = item["box"]
            mask[y1:y2, x1:x2] = True
            assert change[y1:y2, x1:x2].mean() > 12, item
        assert change[~mask].mean() < 4
    clip.release()
    background.release()
