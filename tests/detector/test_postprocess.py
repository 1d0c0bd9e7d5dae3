"""The shared numpy post-processing against torchvision's NMS and the torch letterbox, and the
detector service's compiled path running without torch in the process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms as torch_batched_nms

from detector.models.transform import LetterboxTransform
from detector.postprocess import DecodeConfig, Letterbox, batched_nms, decode_dense, nms

ROOT = Path(__file__).resolve().parents[2]


def random_boxes(rng: np.random.Generator, count: int) -> np.ndarray:
    corners = rng.uniform(0, 300, (count, 2))
    return np.concatenate([corners, corners + rng.uniform(5, 80, (count, 2))], axis=1).astype(np.float32)


def test_nms_by_hand() -> None:
    boxes = np.float32([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30]])
    assert nms(boxes, np.float32([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]
    assert nms(boxes, np.float32([0.8, 0.9, 0.7]), 0.5).tolist() == [1, 2]
    assert nms(boxes, np.float32([0.9, 0.8, 0.7]), 0.9).tolist() == [0, 1, 2], "IoU 0.82 is kept at 0.9"
    assert batched_nms(boxes, np.float32([0.9, 0.8, 0.7]), np.int64([0, 1, 0]), 0.5).tolist() == [0, 1, 2]
    none = np.zeros((0, 4), np.float32)
    assert batched_nms(none, np.zeros(0, np.float32), np.zeros(0, np.int64), 0.5).size == 0


@pytest.mark.parametrize("seed", range(5))
def test_batched_nms_keeps_what_torchvision_keeps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores = random_boxes(rng, 300), rng.permutation(300).astype(np.float32) / 300
    labels = rng.integers(0, 3, 300)
    expected = torch_batched_nms(*(torch.from_numpy(a) for a in (boxes, scores, labels)), 0.5)
    assert batched_nms(boxes, scores, labels, 0.5).tolist() == expected.tolist()


def test_decode_keeps_the_top_scores_above_the_threshold_then_nms() -> None:
    scores = np.zeros((1, 4, 2), np.float32)
    scores[0, 0, 1], scores[0, 1, 1], scores[0, 2, 0], scores[0, 3, 0] = 0.9, 0.8, 0.7, 0.01
    boxes = np.float32([[[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60]]])
    [found] = decode_dense(scores, boxes, DecodeConfig(score_thresh=0.05, nms_iou_thresh=0.5))
    assert found["scores"].tolist() == pytest.approx([0.9, 0.7])
    assert found["labels"].tolist() == [1, 0], "class-aware: the class-0 box under the class-1 one stays"
    [capped] = decode_dense(scores, boxes, DecodeConfig(score_thresh=0.05, pre_nms_topk=1))
    assert capped["scores"].tolist() == pytest.approx([0.9])


@pytest.mark.parametrize(("height", "width", "rect"), [(480, 640, True), (480, 640, False), (384, 216, True)])
def test_the_numpy_letterbox_matches_the_torch_transform(height: int, width: int, rect: bool) -> None:
    """The same geometry and the same picture: uint8 pixels, normalised by the engine, against the
    torch transform's float batch (its resize in float: rounding apart)."""
    image = np.random.default_rng(0).integers(0, 256, (3, height, width), dtype=np.uint8)
    transform = LetterboxTransform(384, rect=rect, stride=32)
    expected, expected_metas, _ = transform([torch.from_numpy(image)])
    letterbox = Letterbox(transform.geometry)
    pixels, metas = letterbox([image])
    assert pixels.dtype == np.uint8 and pixels.shape[-1] == 3 and metas == expected_metas
    batch = letterbox.normalisation(pixels)
    assert batch.shape == tuple(expected.shape)
    assert np.abs(batch - expected.numpy()).mean() < 0.02, "bilinear resize: the same picture"
    same, _ = letterbox([image.astype(np.float32) / 255])
    np.testing.assert_array_equal(same, pixels)


def test_normalisation_at_the_model_scale_is_the_torch_transforms() -> None:
    """No resize: the engine's input equals the torch transform's, padding included."""
    image = np.random.default_rng(2).integers(0, 256, (3, 216, 384), dtype=np.uint8)
    transform = LetterboxTransform(384, rect=True, stride=32)
    expected, _, _ = transform([torch.from_numpy(image)])
    letterbox = Letterbox(transform.geometry)
    np.testing.assert_allclose(letterbox.normalisation(letterbox([image])[0]), expected.numpy(), atol=1e-5)


SERVE = """
import json, logging, sys, cv2
logging.basicConfig(level=logging.INFO)
from detector.runner import DetectorRunner
from shared.schemas import Frame
from vigil.demo import SAMPLE
weights, precision, cache = sys.argv[1:]
runner = DetectorRunner(weights or None, engine="openvino", precision=precision, device="cpu",
                        engine_cache_dir=cache)
capture = cv2.VideoCapture(str(SAMPLE)); capture.set(cv2.CAP_PROP_POS_FRAMES, 12)
ok, image = capture.read()
data = cv2.imencode(".jpg", image)[1].tobytes()
frame = Frame("cam", 1, 0, 0, image.shape[1], image.shape[0], "jpeg", data)
(found,), _ = runner.detect([runner.decode(frame)])
print(json.dumps({"engine": runner.engine, "torch": "torch" in sys.modules, "found": len(found)}))
"""


def serve_in_child(weights: Path | None, precision: str, cache: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", SERVE, str(weights or ""), precision, str(cache)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600, check=True)  # fmt: skip
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "log": done.stderr}


def test_the_service_serves_the_default_engine_without_importing_torch(tmp_path: Path) -> None:
    """A fresh process: the runner loads the shipped INT8 model from its cache entry, detects the two
    pistols of the bundled clip's frame, and has not imported torch (~700 MB of RSS, CUDA build)."""
    report = serve_in_child(None, "int8", tmp_path)
    assert {k: report[k] for k in ("engine", "torch", "found")} == {
        "engine": "openvino-int8", "torch": False, "found": 2
    }, report["log"]


def test_a_first_start_exports_in_a_child_and_then_serves_without_torch(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    report = serve_in_child(tiny_checkpoint, "fp32", tmp_path)
    assert report["engine"] == "openvino-fp32" and report["torch"] is False, report["log"]
    assert "preparing openvino fp32" in str(report["log"])
    [manifest] = tmp_path.glob("*-openvino-*-fp32/manifest.json")
    assert json.loads(manifest.read_text())["serving"]["input_size"] == 128
    again = serve_in_child(tiny_checkpoint, "fp32", tmp_path)
    assert again["torch"] is False and "preparing" not in str(again["log"]), "served from the cache"
