"""The inference engines: the same detections from eager PyTorch, OpenVINO and ONNX Runtime, the
export cache that never trusts a stale or corrupt file, the INT8 gate, and the auto choice."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detector.engines import build, serving
from detector.engines.build import build_detector, set_input_size
from detector.engines.cache import EngineCache, EntryKey, file_sha256
from detector.engines.quantize import quantize
from detector.engines.serving import EngineChoice, default_cache_dir, engine_version
from detector.models.errors import ModelLoadError
from detector.postprocess import DecodeConfig, Letterbox, LetterboxGeometry, Normalisation
from detector.runner import DEFAULT_WEIGHTS
from detector.training.datasets import list_samples, read_rgb
from tests.support.data import data_dir

COMPILED = ("openvino", "onnxruntime")
PISTOLS = data_dir() / "pistols"


def val_images(count: int, *, longer_side: int | None = None) -> list[torch.Tensor]:
    """The first val images as CHW uint8; with ``longer_side``, shrunk to it (uint8 bilinear, as
    ingest and the service shrink frames), so a letterbox of that size does not resize them."""
    paths = [image for image, _ in list_samples(PISTOLS / "images" / "val")][:count]
    images = [read_rgb(path) for path in paths]
    if longer_side is not None:
        images = [cv2.resize(image, (round(image.shape[1] * longer_side / max(image.shape[:2])),
                                     round(image.shape[0] * longer_side / max(image.shape[:2]))),
                             interpolation=cv2.INTER_LINEAR) for image in images]  # fmt: skip
    return [torch.from_numpy(image).permute(2, 0, 1).contiguous() for image in images]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


def shipped(engine: str, cache_dir: Path, **options: object) -> object:
    choice = EngineChoice(DEFAULT_WEIGHTS, engine=engine, precision="fp32", device="cpu", cache_dir=cache_dir)
    return build_detector(EngineChoice(**{**choice.__dict__, **options}))


@pytest.mark.parametrize("engine", COMPILED)
@pytest.mark.parametrize("letterbox", ["square", "rect"])
def test_compiled_engines_find_what_eager_pytorch_finds(engine: str, letterbox: str, cache_dir: Path) -> None:
    rect = letterbox == "rect"
    eager = shipped("torch", cache_dir, rect=rect).model
    compiled = shipped(engine, cache_dir, rect=rect).model
    for model in (eager, compiled):
        model.score_thresh = 0.05
    # at the input size, as the service hands frames over: the torch transform resizes in float,
    # the compiled engines' letterbox in uint8 (tested in test_postprocess.py), so resized inputs
    # differ by rounding; one image per call: a rectangular batch is padded to its largest image,
    # and the compiled engines letterbox each image on its own
    images = val_images(6, longer_side=eager.input_size)
    wanted = [eager.predict([image])[0] for image in images]
    for want, got in zip(wanted, compiled.predict(images), strict=True):
        assert got["labels"].tolist() == want["labels"].tolist()
        assert torch.allclose(got["scores"], want["scores"], atol=1e-4)
        assert torch.allclose(got["boxes"], want["boxes"].float(), atol=0.05)


def test_the_rectangular_letterbox_pads_to_the_stride_not_to_a_square(cache_dir: Path) -> None:
    model = shipped("torch", cache_dir, rect=True).model
    set_input_size(model, 384)
    wide = torch.zeros(3, 720, 1280, dtype=torch.uint8)
    batch, _, _ = model.transform([wide])
    assert tuple(batch.shape[-2:]) == (224, 384)  # 384 x 216 rounded up to 32: 42 % fewer pixels than 384²
    square = shipped("torch", cache_dir, rect=False).model
    set_input_size(square, 384)
    assert tuple(square.transform([wide])[0].shape[-2:]) == (384, 384)
    mixed, _, _ = model.transform([wide, torch.zeros(3, 600, 450, dtype=torch.uint8)])
    assert tuple(mixed.shape[-2:]) == (384, 384)  # the batch holds its tallest and its widest image


@pytest.mark.parametrize("engine", ["torch", "openvino"])
def test_a_model_runs_at_another_input_size_with_boxes_in_its_pixels(engine: str, cache_dir: Path) -> None:
    """``vigil eval --img``: a multi-scale-trained YOLO scored at another size than its checkpoint's."""
    model = shipped(engine, cache_dir).model
    [image] = val_images(1)
    at_own = model.predict([image])[0]
    set_input_size(model, 448)
    at_448 = model.predict([image])[0]
    assert model.input_size == 448
    assert len(at_own["boxes"]) and len(at_448["boxes"])
    iou = box_iou(at_own["boxes"][:1].float(), at_448["boxes"][:1].float())
    assert float(iou) > 0.8  # the same pistol, in the image's own pixels at either size


def test_an_export_is_made_once_then_loaded(cache_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    shipped("openvino", cache_dir)
    with caplog.at_level(logging.INFO, logger="detector.engines"):
        built = shipped("openvino", cache_dir)
    assert built.label == "openvino-fp32"
    assert not [record for record in caplog.records if "exported" in record.getMessage()]


def test_a_stale_or_corrupt_entry_is_rebuilt_never_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    built = shipped("onnxruntime", tmp_path)
    key = EntryKey(built.checkpoint_sha256, "onnxruntime", engine_version("onnxruntime"), "fp32")
    folder = tmp_path / key.folder
    model_file = folder / "model.onnx"

    model_file.write_bytes(model_file.read_bytes()[:1000])  # truncated: a crash, a disk error
    with caplog.at_level(logging.WARNING, logger="detector.engines"):
        rebuilt = shipped("onnxruntime", tmp_path)
    assert "does not match its sha256" in caplog.text
    assert rebuilt.model.predict(val_images(1))  # it runs: the file was exported again
    assert model_file.stat().st_size > 1_000_000

    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "checkpoint_sha256": "0" * 64}))
    assert EngineCache(tmp_path).find(key) is None  # made for another checkpoint
    (folder / "manifest.json").write_text("{not json")
    assert EngineCache(tmp_path).find(key) is None
    shipped("onnxruntime", tmp_path)
    assert EngineCache(tmp_path).find(key) is not None


def test_an_export_that_fails_half_way_leaves_nothing(tmp_path: Path) -> None:
    key = EntryKey("ab" * 32, "onnxruntime", "1", "fp32")

    def crash(folder: Path) -> dict:
        (folder / "model.onnx").write_bytes(b"half a model")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        EngineCache(tmp_path).store(key, crash)
    assert list(tmp_path.iterdir()) == []


def test_int8_without_a_gated_model_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no gated INT8 model.*vigil quantize"):
        build_detector(EngineChoice(Path(_copy_weights(tmp_path)), engine="openvino", precision="int8",
                                    device="cpu", cache_dir=tmp_path / "cache"))  # fmt: skip
    with pytest.raises(ModelLoadError, match="needs the openvino engine"):
        shipped("torch", tmp_path, precision="int8")


@pytest.mark.slow
def test_int8_is_gated_on_val_map(tmp_path: Path) -> None:
    """Calibrated on a few training images, scored on a few val images: refused when the gate
    cannot be met (nothing written), accepted and then loaded by precision int8 and auto."""
    weights = _copy_weights(tmp_path)  # another file: the shipped INT8 model is not this one's
    data = _small_data(tmp_path, train=8, val=12)
    cache = tmp_path / "cache"
    refused, entry = quantize(weights, data, calibration=8, max_drop=-1.0, cache_dir=cache)
    assert entry is None and not refused.passed and "more than the -1.0 allowed" in refused.reason()
    assert not [path for path in cache.iterdir() if "int8" in path.name]

    report, entry = quantize(weights, data, calibration=8, max_drop=1.0, cache_dir=cache)
    assert entry is not None and report.passed
    assert entry.manifest["gate"]["calibration_images"] == 8 and entry.manifest["gate"]["val_images"] == 12
    for precision in ("int8", "auto"):
        built = build_detector(EngineChoice(weights, engine="openvino", precision=precision, device="cpu",
                                            cache_dir=cache))  # fmt: skip
        assert built.label == "openvino-int8"
        assert built.model.predict(val_images(1))


def test_auto_measures_once_and_remembers(tmp_path: Path) -> None:
    weights = _copy_weights(tmp_path)
    built = build_detector(
        EngineChoice(weights, engine="auto", precision="fp32", device="cpu", cache_dir=tmp_path)
    )
    records = list(tmp_path.glob("auto-*.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["engine"] == built.engine == min(record["ms_per_frame"], key=record["ms_per_frame"].get)
    assert set(record["ms_per_frame"]) == {"torch", *COMPILED}
    records[0].write_text(json.dumps({**record, "engine": "onnxruntime"}))  # remembered: not measured again
    again = build_detector(
        EngineChoice(weights, engine="auto", precision="fp32", device="cpu", cache_dir=tmp_path)
    )
    assert again.engine == "onnxruntime"


def test_only_yolo_checkpoints_are_compiled(tmp_path: Path) -> None:
    from detector.models.checkpoint import Checkpoint
    from detector.models.registry import build_model

    model = build_model("localizer_lite0", class_names=("pistol",), input_size=64, pretrained=False)
    localizer = Checkpoint.from_model(model, "localizer_lite0").save(tmp_path / "localizer.pt")
    with pytest.raises(ModelLoadError, match="YOLO checkpoints only"):
        build_detector(EngineChoice(localizer, engine="openvino", device="cpu", cache_dir=tmp_path))
    assert build_detector(EngineChoice(localizer, device="cpu", cache_dir=tmp_path)).engine == "torch"


def test_the_default_cache_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "vigil" / "engines"
    assert os.environ["XDG_CACHE_HOME"] == str(tmp_path)


def _copy_weights(folder: Path) -> Path:
    """The shipped checkpoint under another sha256 (a training field changed)."""
    from detector.models.checkpoint import Checkpoint

    checkpoint = Checkpoint.load(DEFAULT_WEIGHTS)
    checkpoint.training = {**checkpoint.training, "copy": str(folder)}
    return checkpoint.save(folder / "copy.pt")


def _small_data(folder: Path, *, train: int, val: int) -> Path:
    """A data.yaml of the first images of the pistol train and val splits (symlinks)."""
    for split, count in (("train", train), ("val", val)):
        for image, label in list_samples(PISTOLS / "images" / split)[:count]:
            for source, kind in ((image, "images"), (label, "labels")):
                target = folder / "data" / kind / split / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source)
    yaml = folder / "data" / "data.yaml"
    yaml.write_text("path: .\ntrain: images/train\nval: images/val\nnc: 1\nnames: ['pistol']\n")
    return yaml


# -- faults: the service falls back, never crash-loops ------------------------------------------


def test_a_cached_model_the_engine_will_not_load_is_exported_again_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weights = _copy_weights(tmp_path)
    key = EntryKey(file_sha256(weights), "onnxruntime", engine_version("onnxruntime"), "fp32")

    def unloadable(folder: Path) -> dict:
        (folder / "model.onnx").write_bytes(b"not onnx")  # its sha256 in the manifest: sound, but not ONNX
        return {}

    EngineCache(tmp_path).store(key, unloadable)
    with caplog.at_level(logging.WARNING):
        built = build_detector(EngineChoice(weights, engine="onnxruntime", precision="fp32", device="cpu",
                                            cache_dir=tmp_path))  # fmt: skip
    assert (built.label, built.fallback) == ("onnxruntime-fp32", None)
    assert "will not load" in caplog.text and "exporting it again" in caplog.text
    assert built.model.predict(val_images(1))


def test_the_service_falls_back_to_torch_when_the_engine_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    weights = _copy_weights(tmp_path)
    choice = EngineChoice(weights, engine="openvino", precision="fp32", device="cpu", cache_dir=tmp_path)

    def broken_export(model: object, path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("converter crashed")

    monkeypatch.setitem(build.EXPORTERS, "openvino", broken_export)
    with pytest.raises(ModelLoadError, match="openvino export failed: converter crashed"):
        build_detector(choice)
    with caplog.at_level(logging.WARNING):
        built = build_detector(choice, fallback=True)
    assert built.label == "torch-fp32" and "export failed" in (built.fallback or "")
    assert "falling back to torch" in caplog.text
    assert not list(tmp_path.glob("*-openvino-*")), "no entry is left by the failed export"

    monkeypatch.setattr(serving, "installed", lambda engine: engine != "onnxruntime")
    gone = build_detector(EngineChoice(**{**choice.__dict__, "engine": "onnxruntime"}), fallback=True)
    assert gone.label == "torch-fp32" and "not installed" in (gone.fallback or "")


def test_int8_without_a_gated_model_runs_fp32_in_the_service(tmp_path: Path) -> None:
    built = build_detector(EngineChoice(_copy_weights(tmp_path), engine="openvino", precision="int8",
                                        device="cpu", cache_dir=tmp_path), fallback=True)  # fmt: skip
    assert built.label == "openvino-fp32" and "no gated INT8 model" in (built.fallback or "")


def test_openvino_runs_the_images_of_a_batch_concurrently_with_the_same_outputs() -> None:
    """Several images go to the throughput-compiled model (one per stream), one alone to the
    latency-compiled one: the same outputs either way, in order, whatever the shapes."""
    from detector.engines.openvino_engine import OpenVINOEngine
    from detector.engines.serving import SHIPPED_ENGINES

    [xml] = SHIPPED_ENGINES.glob("*-int8/model.xml")
    engine = OpenVINOEngine(xml, precision="int8", normalisation=Normalisation())
    rng = np.random.default_rng(0)
    shapes = ((224, 384), (384, 384), (224, 384))
    batches = [rng.integers(0, 256, (1, *shape, 3), dtype=np.uint8) for shape in shapes]
    together = engine.infer_many(batches)
    for batch, (scores, boxes) in zip(batches, together, strict=True):
        alone_scores, alone_boxes = engine.infer(batch)
        assert scores.shape == alone_scores.shape
        np.testing.assert_allclose(scores, alone_scores, atol=0.02)
        np.testing.assert_allclose(boxes, alone_boxes, atol=2.0)
    assert len(engine.infer_many(batches[:1])) == 1


def test_openvino_normalises_the_pixels_in_its_graph_as_numpy_does() -> None:
    """The engine's compiled pre-processing (uint8 NHWC → normalised float NCHW) gives the outputs
    of the plain model on the batch :class:`Normalisation` makes in numpy."""
    import openvino

    from detector.engines.openvino_engine import OpenVINOEngine
    from detector.engines.serving import SHIPPED_ENGINES

    [xml] = SHIPPED_ENGINES.glob("*-int8/model.xml")
    normalisation = Normalisation()
    pixels = np.random.default_rng(1).integers(0, 256, (1, 224, 384, 3), dtype=np.uint8)
    scores, boxes = OpenVINOEngine(xml, precision="int8", normalisation=normalisation).infer(pixels)
    plain = openvino.Core().read_model(str(xml))
    plain.reshape({0: [1, 3, 224, 384]})
    expected = openvino.Core().compile_model(plain, "CPU")(normalisation(pixels))
    np.testing.assert_allclose(scores, expected[0], atol=1e-3)
    np.testing.assert_allclose(boxes, expected[1], atol=0.05)


def test_building_the_model_for_a_new_shape_is_timed_apart_from_inference() -> None:
    """A first image of a shape builds its model (``compile``); the next one only runs it, so an
    evaluation over many shapes does not report the builds as inference."""
    from detector.engines.compiled import CompiledDetector
    from detector.engines.openvino_engine import OpenVINOEngine
    from detector.engines.serving import SHIPPED_ENGINES

    [xml] = SHIPPED_ENGINES.glob("*-int8/model.xml")
    engine = OpenVINOEngine(xml, precision="int8", normalisation=Normalisation())
    detector = CompiledDetector(engine, Letterbox(LetterboxGeometry(384, rect=True)), class_names=("pistol",),
                                decode=DecodeConfig())  # fmt: skip
    image = np.zeros((3, 216, 384), np.uint8)
    first: dict[str, float] = {}
    again: dict[str, float] = {}
    detector.predict([image], timings=first)
    detector.predict([image], timings=again)
    assert first["compile"] > first["inference"] > 0 and engine.compile_seconds == first["compile"]
    assert "compile" not in again and again["inference"] > 0


def test_openvino_says_where_the_time_goes_layer_by_layer() -> None:
    """The per-layer counters name the exported modules, so time can be split by part of the
    network (bench/engines.py --profile): the backbone's stages, the neck, the head, and the
    depthwise convolutions among them."""
    from detector.engines.openvino_engine import OpenVINOEngine
    from detector.engines.serving import SHIPPED_ENGINES

    [xml] = SHIPPED_ENGINES.glob("*-int8/model.xml")
    engine = OpenVINOEngine(xml, precision="int8", normalisation=Normalisation())
    layers = engine.layer_times(np.zeros((1, 224, 384, 3), np.uint8), runs=2)
    assert all(layer.ms >= 0 for layer in layers) and sum(layer.ms for layer in layers) > 0
    parts = {layer.name.strip("/").split("/")[0] for layer in layers if layer.ms > 0}
    assert {"backbone", "neck", "head"} <= parts
    depthwise = {layer.name.strip("/").split("/")[1] for layer in layers if layer.kind == "GroupConvolution"}
    assert {f"stages.{stage}" for stage in range(5)} <= depthwise  # every MBConv stage has them
