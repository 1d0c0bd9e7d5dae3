"""The engine choice, and serving a compiled model straight from the cache, without torch.

A CUDA-built torch maps about 700 MB into a process that imports it (RSS, measured in
docs/engines.md#memory), more than OpenVINO and the whole model need. So the detector service
loads a compiled model from its cache entry alone: the files, and the :class:`ServingSpec` the
export wrote into the manifest. What needs the checkpoint (exporting, ``auto``'s measurement) runs
once in a child process (``detector/engines/prepare.py``), and the service stays free of torch
unless torch itself is chosen or is the fallback.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from detector.engines.cache import EngineCache, EntryKey, file_sha256
from detector.engines.compiled import CompiledDetector, DenseEngine, ServingSpec
from detector.models.errors import ModelLoadError
from detector.postprocess import Normalisation

log = logging.getLogger(__name__)
COMPILED_ENGINES = ("openvino", "onnxruntime")
ENGINES = ("torch", *COMPILED_ENGINES)
MODEL_FILES = {"openvino": "model.xml", "onnxruntime": "model.onnx"}
SHIPPED_ENGINES = Path(__file__).resolve().parent.parent / "weights" / "engines"
"""Read-only cache entries shipped with the checkpoints: the gated INT8 models."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vigil" / "engines"


@dataclass(frozen=True)
class EngineChoice:
    checkpoint: Path
    engine: str = "auto"
    precision: str = "auto"
    device: str = "auto"
    cache_dir: Path | None = None
    rect: bool = True
    threads: int | None = None

    def cache(self) -> EngineCache:
        return EngineCache(self.cache_dir or default_cache_dir(), extra_roots=[SHIPPED_ENGINES])


def installed(engine: str) -> bool:
    return importlib.util.find_spec(engine) is not None


def unusable(engine: str) -> str | None:
    """Why ``engine`` cannot run in this process, or None."""
    if not installed(engine):
        return f"engine {engine} is not installed (pip install {engine})"
    if engine == "openvino":
        from detector.engines.openvino_engine import allocator_conflict

        if (allocator := allocator_conflict()) is not None:
            return (f"engine openvino cannot run under a preloaded {allocator} (it aborts); start without "
                    "LD_PRELOAD (the vigil commands do) or choose another engine")  # fmt: skip
    return None


def engine_version(engine: str) -> str:
    if engine == "openvino":
        from detector.engines.openvino_engine import version
    elif engine == "onnxruntime":
        from detector.engines.onnxruntime_engine import version
    else:
        return importlib.metadata.version("torch")
    return version()


def load_engine(
    engine: str, path: Path, precision: str, spec: ServingSpec, threads: int | None
) -> DenseEngine:
    """The engine's model from ``path``, normalising its input as ``spec`` says; ModelLoadError when
    the engine refuses it."""
    normalisation = Normalisation(spec.mean, spec.std)
    if engine == "openvino":
        from detector.engines.openvino_engine import OpenVINOEngine

        return OpenVINOEngine(path, precision=precision, normalisation=normalisation, threads=threads)
    from detector.engines.onnxruntime_engine import ONNXRuntimeEngine

    return ONNXRuntimeEngine(path, precision=precision, normalisation=normalisation, threads=threads)


def gpu_present() -> bool:
    """Whether the NVIDIA driver lists a GPU (``device: auto`` then means CUDA, and torch)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return gpus.is_dir() and any(gpus.iterdir())


def on_cpu(choice: EngineChoice) -> bool:
    return choice.device == "cpu" or (choice.device == "auto" and not gpu_present())


# -- auto ---------------------------------------------------------------------------------------


def auto_record(choice: EngineChoice, sha: str) -> Path:
    """Where ``auto``'s measured choice for this checkpoint, precision and host is kept."""
    versions = {engine: engine_version(engine) for engine in ENGINES if unusable(engine) is None}
    folder = Path(choice.cache_dir or default_cache_dir())
    return folder / f"auto-{sha[:16]}-{choice.precision}-{cpu_tag(versions)}.json"


def recorded_auto(choice: EngineChoice, sha: str) -> str | None:
    """The engine ``auto`` measured earlier for this choice on this host, or None."""
    try:
        chosen = json.loads(auto_record(choice, sha).read_text())["engine"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return chosen if chosen in ENGINES and (chosen == "torch" or unusable(chosen) is None) else None


def cpu_tag(versions: dict[str, str]) -> str:
    """A short hash of the CPU model, core count and engine versions: another host measures again."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                      if line.startswith("model name")), "")  # fmt: skip
    except OSError:
        model = ""
    text = f"{platform.machine()}|{model}|{os.cpu_count()}|{sorted(versions.items())}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# -- serving ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    model: CompiledDetector
    name: str
    checkpoint_sha256: str
    engine: str
    precision: str
    fallback: str | None = None
    """Why the precision is not the one asked for (no gated INT8 model), or None."""


def planned_engine(choice: EngineChoice, sha: str) -> str | None:
    """The engine this choice runs when that is known without torch: the one named, or ``auto``'s
    earlier measurement (torch on a GPU); None when ``auto`` has not measured yet."""
    if choice.engine != "auto":
        return choice.engine
    return recorded_auto(choice, sha) if on_cpu(choice) else "torch"


def worth_preparing(choice: EngineChoice) -> bool:
    """Whether, :func:`serve` having found nothing, a child process that exports or measures could
    make it succeed: not for torch, nor for an engine that cannot run here (the torch path then
    falls back, saying why)."""
    if not on_cpu(choice) or not choice.checkpoint.is_file():
        return False
    engine = planned_engine(choice, file_sha256(choice.checkpoint))
    return engine != "torch" and (engine is None or unusable(engine) is None)


def serve(choice: EngineChoice, **decode_overrides: float) -> Served | None:
    """The compiled detector for ``choice`` from the cache, without torch; None when it needs the
    checkpoint: torch is the choice, ``auto`` has not measured, the engine cannot run here, or no
    sound entry with a serving spec exists yet (not exported). An ``int8`` choice without a gated
    model serves fp32 and says so (``Served.fallback``), as the torch path does."""
    if not on_cpu(choice) or not choice.checkpoint.is_file():
        return None
    sha = file_sha256(choice.checkpoint)
    engine = planned_engine(choice, sha)
    if engine not in COMPILED_ENGINES or unusable(engine) is not None:
        return None
    version, cache = engine_version(engine), choice.cache()
    entry, precision, fallback = None, "fp32", None
    if choice.precision in ("int8", "auto") and engine == "openvino":
        entry = cache.find(EntryKey(sha, engine, version, "int8"))
        precision = "int8" if entry is not None else "fp32"
    if entry is None:
        if choice.precision == "int8":
            fallback = "int8: no gated INT8 model for this checkpoint"
        entry = cache.find(EntryKey(sha, engine, version, "fp32"))
    if entry is None:
        return None
    try:
        spec = ServingSpec.from_json(entry.manifest.get("serving") or {})
        loaded = load_engine(engine, entry.path(MODEL_FILES[engine]), precision, spec, choice.threads)
    except (ValueError, ModelLoadError) as error:  # the torch path exports again, or falls back
        log.warning("engine cache: %s cannot serve (%s)", entry.folder, error)
        return None
    model = CompiledDetector.from_spec(loaded, spec, rect=choice.rect, **decode_overrides)
    return Served(model, spec.name, sha, engine, precision, fallback)
