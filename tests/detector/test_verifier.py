"""The second-stage verifier: crops in the frame's own pixels, one forward pass per batch, and
each track verified once per ``every_s`` of frame time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from detector.models.checkpoint import CheckpointError
from detector.models.localizer import Localizer
from detector.postprocess import chw
from detector.runner import DecodedFrame, native_image
from detector.verifier import Candidates, TrackVerifier, Verifier, context_regions
from shared.imaging import decode_bgr
from shared.schemas import Box, Detection, Frame
from tests.detector.conftest import RECTANGLE, background_box, jpeg_frame, tiled_frame

MARGIN = 0.15
NOISE = (background_box(0, 0, MARGIN), background_box(2, 3, MARGIN))
SECOND_NS = 1_000_000_000


@pytest.fixture
def verifier(overfit_localizer: Localizer) -> Verifier:
    return Verifier(overfit_localizer, margin=MARGIN)


def decoded(frame: Frame) -> DecodedFrame:
    """The frame as a compiled engine's runner hands it: decoded smaller than the frame (here 1/2)."""
    rgb = decode_bgr(frame)[::2, ::2, ::-1].copy()
    return DecodedFrame(frame, chw(rgb), 2.0)


def det(box: Box, track_id: int | None, score: float = 0.9) -> Detection:
    return Detection(label="rect", class_id=0, score=score, box=box, track_id=track_id)


def test_context_regions_grow_each_side_and_clip_to_the_frame() -> None:
    boxes = torch.tensor([[100.0, 50, 200, 150], [0, 0, 20, 10]])
    regions = context_regions(boxes, width=210, height=160, margin=0.15)
    assert regions.tolist() == [[85.0, 35.0, 210.0, 160.0], [0.0, 0.0, 23.0, 11.5]]


def test_native_image_is_the_frame_at_its_own_size() -> None:
    for frame in (jpeg_frame("cam", 0, 320, 240), tiled_frame("cam", 1)):
        image = native_image(decoded(frame), chw)
        assert image.shape == (3, frame.height, frame.width) and image.dtype == np.uint8
        assert native_image(DecodedFrame(frame, image, 1.0), chw) is image, "already full size: as it is"
    raw = tiled_frame("cam", 2)
    bgr = native_image(decoded(raw), chw).transpose(1, 2, 0)[..., ::-1]
    assert (bgr == decode_bgr(raw)).all(), "the frame's own pixels"


def test_the_verifier_scores_crops_in_the_frames_pixels(
    verifier: Verifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """High on the rectangle, low on the noise; every crop of the batch in one forward pass."""
    frames = [tiled_frame("a", 0), tiled_frame("b", 1)]
    calls: list[int] = []
    score_regions = verifier.model.score_regions
    monkeypatch.setattr(
        verifier.model, "score_regions", lambda crops: calls.append(len(crops)) or score_regions(crops)
    )
    scores = verifier.score([
        Candidates(native_image(decoded(frame), verifier.image), [RECTANGLE, *NOISE], ["rect"] * 3)
        for frame in frames
    ])  # fmt: skip
    assert calls == [6]
    for on_rectangle, *on_noise in scores:
        assert on_rectangle > 0.9 and max(on_noise) < 0.1, scores


def test_an_empty_batch_needs_no_forward_pass(verifier: Verifier) -> None:
    image = torch.zeros(3, 20, 20, dtype=torch.uint8)
    assert verifier.score([Candidates(image, [], [])]) == [[]]


def test_labels_the_localizer_does_not_know_are_refused(verifier: Verifier) -> None:
    verifier.check_labels(["rect"])
    with pytest.raises(CheckpointError, match="pistol"):
        verifier.check_labels(["rect", "pistol"])


def test_each_track_is_verified_once_per_every_s_and_carries_its_score(verifier: Verifier) -> None:
    tracks = TrackVerifier(verifier, min_score=0.5, every_s=2.0)
    objects = [det(RECTANGLE, 1), det(NOISE[0], 2), det(NOISE[1], None), det(NOISE[1], 3, score=0.4)]
    verified, scores = [], []
    for step in range(6):  # frames 0.5 s apart: due at 0 s, then at 2.0 s
        frame = tiled_frame("cam", step, ts_ns=step * SECOND_NS // 2)
        outcome = tracks.verify([(decoded(frame), objects)])
        verified += outcome.verified
        scores.append([obj.verify_score for obj in outcome.detections[0]])
    assert verified == [2, 0, 0, 0, 2, 0], "tracks 1 and 2; untracked and weak detections never"
    for rectangle, noise, untracked, weak in scores:
        assert rectangle is not None and rectangle > 0.9
        assert noise is not None and noise < 0.1
        assert untracked is None and weak is None


def test_lost_tracks_and_cameras_are_forgotten(verifier: Verifier) -> None:
    tracks = TrackVerifier(verifier, min_score=0.5, every_s=60.0)
    frame = decoded(tiled_frame("cam", 0, ts_ns=0))
    assert tracks.verify([(frame, [det(RECTANGLE, 1), det(NOISE[0], 2)])]).verified == [2]
    tracks.retain("cam", {1})
    assert tracks.verify([(frame, [det(RECTANGLE, 1), det(NOISE[0], 2)])]).verified == [1]
    tracks.forget("cam")
    assert tracks.verify([(frame, [det(RECTANGLE, 1)])]).verified == [1]


def test_a_localizer_checkpoint_loads_as_a_verifier(
    localizer_checkpoint: Path, tiny_checkpoint: Path
) -> None:
    loaded = Verifier.load(localizer_checkpoint, device=torch.device("cpu"), margin=0.2)
    assert loaded.margin == 0.2 and loaded.model.class_names == ("rect",)
    with pytest.raises(CheckpointError, match="not a localizer"):
        Verifier.load(tiny_checkpoint, device=torch.device("cpu"), margin=MARGIN)
