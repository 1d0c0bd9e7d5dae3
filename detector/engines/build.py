"""From a checkpoint and the configured engine and precision to a ready detector.

``engine``: ``torch`` (eager; CUDA fp16 on a GPU), ``openvino``, ``onnxruntime``, or ``auto``: on a
GPU, torch; on the CPU, the fastest installed engine for this checkpoint, measured once (each
engine times the same 16:9 frame, in turns; medians) and remembered in the cache folder, keyed by
the checkpoint, the CPU and the engines' versions. Only YOLO checkpoints have a dense network to
export; the others run in torch whatever is asked, and ``auto`` says so.

``precision``: ``fp32``, ``int8`` (OpenVINO only: the model ``vigil quantize`` made and gated for
this checkpoint; refused with the reason when there is none), or ``auto`` (INT8 where such a model
exists, else fp32).

A compiled model that will not load is exported again once; then the choice has failed. With
``fallback=True`` (the detector service: never a crash loop) a failed choice runs in torch
instead (an INT8 model that is missing: fp32 of the same engine), with the reason in
:attr:`BuiltDetector.fallback` and one warning; without, it raises ModelLoadError.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from detector.device import pick_device
from detector.engines.cache import EngineCache, EntryKey, file_sha256
from detector.engines.compiled import DenseEngine, ServingSpec
from detector.engines.compiled_torch import CompiledYOLO
from detector.engines.serving import (
    ENGINES,
    MODEL_FILES,
    EngineChoice,
    auto_record,
    engine_version,
    load_engine,
    recorded_auto,
    unusable,
)
from detector.export import Parity, export_onnx, export_openvino
from detector.models.checkpoint import Checkpoint
from detector.models.detector import Detector
from detector.models.errors import ModelLoadError
from detector.models.yolo import YOLO

log = logging.getLogger(__name__)


@dataclass
class BuiltDetector:
    model: Detector
    checkpoint: Checkpoint
    checkpoint_sha256: str
    device: torch.device
    engine: str
    precision: str
    fallback: str | None = None
    """Why this is not the engine or precision asked for, or None when it is."""

    @property
    def label(self) -> str:
        return f"{self.engine}-{self.precision}"


def set_input_size(model: Detector, size: int) -> None:
    """Run ``model`` at another input size than its checkpoint's: the letterbox of a compiled model,
    the transform of an eager one (evaluation and benchmarks; a YOLO trained multi-scale may be
    served at another size)."""
    if isinstance(model, CompiledYOLO):
        letterbox = model.compiled.letterbox
        model.compiled.letterbox = replace(letterbox, geometry=replace(letterbox.geometry, size=size))
    else:
        model.transform.size = size
    model.input_size = size


def build_detector(
    choice: EngineChoice, *, fallback: bool = False, **decode_overrides: float
) -> BuiltDetector:
    """The checkpoint's detector on the chosen engine and precision; ``decode_overrides``
    (``nms_iou_thresh``, ...) go to the checkpoint's builder. Raises ModelLoadError when the choice
    cannot be met (an engine not installed or failing to export or load, INT8 without a gated
    model, a compiled engine on a GPU), unless ``fallback`` (see the module docstring). A checkpoint
    that does not load raises ModelLoadError either way."""
    if choice.engine not in (*ENGINES, "auto"):
        raise ModelLoadError(f"unknown engine {choice.engine!r}; choose auto or one of {', '.join(ENGINES)}")
    checkpoint = Checkpoint.load(choice.checkpoint)
    sha = file_sha256(choice.checkpoint)
    device = pick_device(choice.device)
    model = checkpoint.build(**decode_overrides).eval()
    if isinstance(model, YOLO):  # the letterbox every engine shares: square or padded to the stride
        model.transform.rect = choice.rect
        model.transform.stride = max(model.head.strides)
    engine = choice.engine
    if engine == "auto":
        engine = _auto_engine(choice, model, sha, device, decode_overrides)
    try:
        if engine == "torch":
            if choice.precision == "int8":
                raise ModelLoadError("precision int8 needs the openvino engine; torch runs fp32 "
                                     "(fp16 on CUDA)")  # fmt: skip
        else:
            _check_compilable(engine, checkpoint, model, device)
            spec = serving_spec(checkpoint, model)
            cache = choice.cache()
            compiled, precision = _compiled(model, spec, engine, choice, sha, cache, fallback=fallback)
            missed = "int8: no gated INT8 model for this checkpoint"
            return BuiltDetector(compiled, checkpoint, sha, device, engine, precision,
                                 missed if choice.precision == "int8" != precision else None)  # fmt: skip
    except ModelLoadError as error:
        if not fallback:
            raise
        log.warning("engine %s %s cannot run (%s); falling back to torch", engine, choice.precision, error)
        return _torch(model, checkpoint, sha, device, fallback=f"{engine} {choice.precision}: {error}")
    return _torch(model, checkpoint, sha, device)


def _check_compilable(engine: str, checkpoint: Checkpoint, model: Detector, device: torch.device) -> None:
    if device.type != "cpu":
        raise ModelLoadError(f"engine {engine} runs on the CPU only; device is {device}")
    if not isinstance(model, YOLO):
        raise ModelLoadError(
            f"engine {engine} runs YOLO checkpoints only; {checkpoint.name} is {checkpoint.arch}"
        )
    if (problem := unusable(engine)) is not None:
        raise ModelLoadError(problem)


def _torch(
    model: Detector, checkpoint: Checkpoint, sha: str, device: torch.device, *, fallback: str | None = None
) -> BuiltDetector:
    return BuiltDetector(_eager(model, device), checkpoint, sha, device, "torch",
                         "fp16" if device.type == "cuda" else "fp32", fallback)  # fmt: skip


def _eager(model: Detector, device: torch.device) -> Detector:
    model = model.to(device)
    # channels-last convolutions: 1.3-2.5x faster for the depthwise-heavy backbones on CPU
    # (bench/models.py), and what tensor cores want on CUDA
    model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        model.half()
    return model


def serving_spec(checkpoint: Checkpoint, model: YOLO) -> ServingSpec:
    """What serving ``model`` needs without its checkpoint (written into each cache entry)."""
    return ServingSpec(name=checkpoint.name, class_names=model.class_names, input_size=model.input_size,
                       stride=max(model.head.strides), mean=checkpoint.mean, std=checkpoint.std,
                       pad_value=model.transform.pad_value, decode=model.decode_config)  # fmt: skip


def _compiled(
    model: YOLO, spec: ServingSpec, engine: str, choice: EngineChoice, sha: str, cache: EngineCache, *,
    fallback: bool,
) -> tuple[CompiledYOLO, str]:
    version = engine_version(engine)
    precision = choice.precision
    if precision in ("int8", "auto"):
        int8 = cache.find(EntryKey(sha, engine, version, "int8")) if engine == "openvino" else None
        if int8 is not None:
            loaded = load_engine(engine, int8.path(MODEL_FILES[engine]), "int8", spec, choice.threads)
            return _wrap(model, loaded), "int8"
        if precision == "int8":
            problem = (f"no gated INT8 model for this checkpoint ({sha[:12]}, {engine} {version}); make "
                       "one with `vigil quantize` or use precision fp32 (int8 needs openvino)")  # fmt: skip
            if not fallback:
                raise ModelLoadError(problem)
            log.warning("%s; running %s fp32", problem, engine)
    key = EntryKey(sha, engine, version, "fp32")
    export = lambda folder: _export(model, spec, engine, folder)  # noqa: E731
    entry = cache.fetch(key, export)
    try:
        if "serving" not in entry.manifest:  # an older export: no serving facts
            raise ModelLoadError("the entry has no serving spec")
        loaded = load_engine(engine, entry.path(MODEL_FILES[engine]), "fp32", spec, choice.threads)
    except ModelLoadError as error:  # sound files the engine will not load: export once more
        log.warning("engine cache: %s will not load (%s); exporting it again", entry.folder, error)
        entry = cache.store(key, export)
        loaded = load_engine(engine, entry.path(MODEL_FILES[engine]), "fp32", spec, choice.threads)
    return _wrap(model, loaded), "fp32"


EXPORTERS: dict[str, Callable[[YOLO, Path], Parity]] = {
    "openvino": export_openvino,
    "onnxruntime": export_onnx,
}


def _export(model: YOLO, spec: ServingSpec, engine: str, folder: Path) -> dict[str, object]:
    started = time.perf_counter()
    try:
        parity = EXPORTERS[engine](model, folder / MODEL_FILES[engine])
    except (RuntimeError, ValueError, OSError) as error:  # torch.onnx, onnx, openvino's converter
        raise ModelLoadError(f"{engine} export failed: {error}") from error
    if not parity.ok():
        raise ModelLoadError(f"{engine} export differs from eager PyTorch: {parity}")
    log.info("exported the dense network to %s in %.1f s (max |diff| scores %.1e, boxes %.1e px)",
             engine, time.perf_counter() - started, parity.scores, parity.boxes_px)  # fmt: skip
    return {"parity": {"scores": parity.scores, "boxes_px": parity.boxes_px}, "serving": spec.to_json()}


def _wrap(model: YOLO, engine: DenseEngine) -> CompiledYOLO:
    return CompiledYOLO.of(engine, model.transform, class_names=model.class_names, decode=model.decode_config)


# -- auto ---------------------------------------------------------------------------------------

TIMED_CALLS = 3
TIMED_ROUNDS = 5


def _auto_engine(
    choice: EngineChoice, model: Detector, sha: str, device: torch.device, decode_overrides: dict
) -> str:
    if device.type != "cpu":
        return "torch"
    if not isinstance(model, YOLO):
        log.info("engine auto: %s is not a YOLO checkpoint; torch", type(model).__name__)
        return "torch"
    candidates = [engine for engine in ENGINES if unusable(engine) is None]
    if len(candidates) == 1:
        return "torch"
    if (chosen := recorded_auto(choice, sha)) is not None:
        return chosen
    versions = {engine: engine_version(engine) for engine in candidates}
    timings = _time_engines(choice, candidates, decode_overrides)
    chosen = min(timings, key=timings.__getitem__)
    log.info("engine auto: %s (ms per 16:9 frame, fp32: %s)", chosen,
             ", ".join(f"{engine} {ms:.1f}" for engine, ms in timings.items()))  # fmt: skip
    record = auto_record(choice, sha)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"engine": chosen, "ms_per_frame": timings, "versions": versions}))
    return chosen


def _time_engines(choice: EngineChoice, engines: list[str], decode_overrides: dict) -> dict[str, float]:
    """Median ms per 16:9 frame of each engine at the precision it would run (``auto``: OpenVINO
    INT8 where a gated model exists): ``TIMED_ROUNDS`` rounds of ``TIMED_CALLS`` calls, the engines
    taking turns within a round, so that a busy second on a shared host slows them all rather than
    deciding the choice."""
    models = {}
    for engine in engines:
        precision = "fp32" if choice.precision == "int8" and engine != "openvino" else choice.precision
        models[engine] = build_detector(
            EngineChoice(**{**choice.__dict__, "engine": engine, "precision": precision}), **decode_overrides
        ).model
    size = next(iter(models.values())).input_size
    image = torch.randint(0, 256, (3, size * 9 // 16, size), dtype=torch.uint8)
    for model in models.values():
        model.predict([image])  # warm-up: compilation, first allocations
    samples: dict[str, list[float]] = {engine: [] for engine in engines}
    for round_ in range(TIMED_ROUNDS):
        for engine in engines[round_ % len(engines):] + engines[: round_ % len(engines)]:
            started = time.perf_counter()
            for _ in range(TIMED_CALLS):
                models[engine].predict([image])
            samples[engine].append(1000 * (time.perf_counter() - started) / TIMED_CALLS)
    return {engine: statistics.median(values) for engine, values in samples.items()}
