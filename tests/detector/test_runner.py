"""DetectorRunner: frames decoded at the model's scale give the detections the model gives on the
full frame, in the frame's own pixels."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from detector.boxes import iou_matrix_np
from detector.runner import DetectorRunner
from shared.errors import DecodeError
from shared.schemas import Frame
from vigil.demo import SAMPLE

FRAME_INDEX = 12  # the middle of the first image of the clip, which shows two pistols


@pytest.fixture(scope="module")
def runner() -> DetectorRunner:
    return DetectorRunner(score_thresh=0.4, engine="openvino", device="cpu")  # the shipped detector, served


@pytest.fixture(scope="module")
def eager() -> DetectorRunner:
    """The shipped detector in torch: the path with nvJPEG's batched decode (CUDA), run on the CPU."""
    return DetectorRunner(score_thresh=0.4, engine="torch", device="cpu")


@pytest.fixture(scope="module")
def clip_frame() -> tuple[np.ndarray, np.ndarray]:
    """A 640x480 BGR frame of the bundled clip and its ground-truth pistol boxes."""
    capture = cv2.VideoCapture(str(SAMPLE))
    capture.set(cv2.CAP_PROP_POS_FRAMES, FRAME_INDEX)
    ok, image = capture.read()
    assert ok
    truth = json.loads(SAMPLE.with_suffix(".json").read_text())["images"][0]["boxes"][FRAME_INDEX]
    return image, np.array(truth)


def _frame(image: np.ndarray, codec: str) -> Frame:
    data = (
        cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        if codec == "jpeg"
        else (image.tobytes())
    )
    return Frame("cam", 1, 0, 0, image.shape[1], image.shape[0], codec, data)  # type: ignore[arg-type]


@pytest.mark.parametrize("codec", ["jpeg", "raw"])
def test_frames_are_decoded_at_the_model_scale_and_boxes_return_to_frame_pixels(
    runner: DetectorRunner, clip_frame: tuple[np.ndarray, np.ndarray], codec: str
) -> None:
    image, truth = clip_frame
    decoded = runner.decode(_frame(image, codec))
    side = runner.input_size  # the shipped checkpoint's
    assert decoded.image.shape == (3, side * 3 // 4, side) and decoded.image.dtype == np.uint8
    assert decoded.scale == pytest.approx(640 / side)

    (found,), _seconds = runner.detect([decoded])
    boxes = np.array([d.box for d in found])
    assert len(found) == len(truth), found
    assert iou_matrix_np(truth, boxes).max(axis=1).min() >= 0.7, "each pistol found where it is"

    (reference,) = runner.model.predict([runner.model.image(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))])
    assert iou_matrix_np(reference["boxes"], boxes).max(axis=1).min() >= 0.9, "as on the full frame"


def test_large_jpegs_are_decoded_reduced_then_shrunk(runner: DetectorRunner) -> None:
    image = np.full((1080, 1920, 3), 90, np.uint8)
    decoded = runner.decode(_frame(image, "jpeg"))
    side = runner.input_size
    assert decoded.image.shape == (3, side * 9 // 16, side)
    assert decoded.scale == pytest.approx(1920 / side)


def test_corrupt_data_raises_decode_error(runner: DetectorRunner) -> None:
    with pytest.raises(DecodeError, match="corrupt JPEG"):
        runner.decode(Frame("cam", 1, 0, 0, 640, 480, "jpeg", b"\xff\xd8not a jpeg"))
    with pytest.raises(DecodeError, match="wrong size"):
        runner.decode(Frame("cam", 1, 0, 0, 640, 480, "raw", b"\x00" * 100))


@pytest.mark.parametrize("device_decode", [False, True])
def test_a_batch_decodes_together_and_a_corrupt_frame_is_set_aside(
    eager: DetectorRunner, clip_frame: tuple[np.ndarray, np.ndarray], device_decode: bool
) -> None:
    """``device_decode`` is the CUDA path (torchvision's batched decode_jpeg), run here on the CPU."""
    runner = eager
    image, _truth = clip_frame
    good, raw = _frame(image, "jpeg"), _frame(image, "raw")
    corrupt = Frame("cam", 2, 0, 0, 640, 480, "jpeg", good.data[: len(good.data) // 3])
    runner.device_decode = device_decode
    try:
        decoded, failed = runner.decode_batch([good, corrupt, raw, good])
    finally:
        runner.device_decode = False
    assert [item.frame for item in decoded] == [good, raw, good]
    assert [(frame, type(error)) for frame, error in failed] == [(corrupt, DecodeError)]
    reference = runner.decode(good)
    ((first, *_),), _seconds = runner.detect(decoded[:1])
    ((expected, *_),), _seconds = runner.detect([reference])
    assert first.score == pytest.approx(expected.score, abs=0.02)
    assert iou_matrix_np(np.array([first.box]), np.array([expected.box]))[0, 0] >= 0.95


def test_the_device_path_decodes_every_jpeg_of_a_batch_in_one_call(
    eager: DetectorRunner, clip_frame: tuple[np.ndarray, np.ndarray]
) -> None:
    runner = eager
    image, _truth = clip_frame
    frames = [_frame(image, "jpeg"), _frame(cv2.flip(image, 1), "jpeg")]
    runner.device_decode = True
    try:
        decoded, failed = runner.decode_batch(frames)
    finally:
        runner.device_decode = False
    assert not failed
    assert [tuple(item.image.shape) for item in decoded] == [(3, 480, 640)] * 2, (
        "full size: the model shrinks"
    )
    assert [item.scale for item in decoded] == [1.0, 1.0]
    cpu = runner.decode(frames[0]).image.float()
    side = runner.input_size
    shrunk = torch.nn.functional.interpolate(
        decoded[0].image[None].float(), size=(side * 3 // 4, side), mode="bilinear", align_corners=False
    )[0]  # as shared.imaging.shrink, under 2x
    assert (shrunk - cpu).abs().mean() < 2.0, "the same picture as OpenCV's decode"
