"""INT8 post-training quantization in OpenVINO (NNCF), behind an accuracy gate.

Calibration runs the fp32 model over at most 300 training images, letterboxed exactly as the
service letterboxes frames, to set each activation's INT8 range. The gate then scores the fp32 and
the INT8 model on the validation split with the same evaluation (``vigil eval``'s): when mAP@0.5
drops by more than ``max_drop`` (0.01), the INT8 model is refused, nothing is written and the
reason is returned. A model that passes is stored as a cache entry (``cache.py``) whose manifest
records the gate's figures; only such an entry is ever loaded as ``int8``.

The backbone's stem (its first convolution, on the raw pixels) stays fp32 (``FP32_SCOPES``):
quantized with the rest it cost the shipped detector 0.012–0.015 val mAP@0.5; kept fp32, nothing
(docs/engines.md has the settings tried).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from detector.engines.build import build_detector
from detector.engines.cache import EngineCache, Entry, EntryKey
from detector.engines.compiled import CompiledDetector
from detector.engines.compiled_torch import CompiledYOLO
from detector.engines.openvino_engine import OpenVINOEngine
from detector.engines.serving import MODEL_FILES, EngineChoice, default_cache_dir, engine_version
from detector.training.datasets import DataSpec, YoloDataset, list_samples, read_rgb
from detector.training.evaluate import EvalReport, evaluate

if TYPE_CHECKING:
    import openvino

log = logging.getLogger(__name__)
MAX_CALIBRATION_IMAGES = 300
MAX_MAP50_DROP = 0.01
FP32_SCOPES = (r".*/backbone/stages\.0/stages\.0\.0/.*",)
"""Node-name patterns of the exported network that NNCF leaves in fp32 (chosen on val)."""


@dataclass(frozen=True)
class GateReport:
    fp32_map50: float
    int8_map50: float
    fp32_map50_95: float
    int8_map50_95: float
    fp32_ms_per_image: float
    int8_ms_per_image: float
    max_drop: float
    calibration_images: int
    val_images: int

    @property
    def drop(self) -> float:
        return self.fp32_map50 - self.int8_map50

    @property
    def passed(self) -> bool:
        return self.drop <= self.max_drop

    def reason(self) -> str:
        verdict = "within" if self.passed else "more than"
        return (f"val mAP@0.5 {self.fp32_map50:.4f} fp32 -> {self.int8_map50:.4f} int8: a drop of "
                f"{self.drop:+.4f}, {verdict} the {self.max_drop} allowed")  # fmt: skip

    def summary(self) -> dict[str, object]:
        return {**asdict(self), "drop": round(self.drop, 4), "passed": self.passed}


def calibration_images(train_dir: Path, count: int, *, seed: int = 0) -> list[torch.Tensor]:
    """``count`` training images (a seeded sample), CHW uint8 RGB."""
    paths = [image for image, _label in list_samples(train_dir)]
    random.Random(seed).shuffle(paths)
    return [torch.from_numpy(read_rgb(path)).permute(2, 0, 1).contiguous() for path in paths[:count]]


def quantize_openvino(
    xml: Path, batches: Sequence[np.ndarray], fp32_scopes: Sequence[str] = FP32_SCOPES
) -> openvino.Model:
    """The fp32 OpenVINO model in ``xml`` quantized to INT8 by NNCF on ``batches`` (normalised network
    input), the nodes matching ``fp32_scopes`` left in fp32. No gate: ``quantize`` gates."""
    import nncf
    import openvino

    ignored = nncf.IgnoredScope(patterns=list(fp32_scopes)) if fp32_scopes else None
    return nncf.quantize(openvino.Core().read_model(str(xml)), nncf.Dataset(list(batches)),
                         subset_size=len(batches), ignored_scope=ignored)  # fmt: skip


def quantize(
    weights: Path,
    data: Path,
    *,
    calibration: int = MAX_CALIBRATION_IMAGES,
    max_drop: float = MAX_MAP50_DROP,
    cache_dir: Path | None = None,
    out_dir: Path | None = None,
    rect: bool = True,
) -> tuple[GateReport, Entry | None]:
    """Quantize ``weights`` for OpenVINO, calibrated on ``data``'s train split and gated on its val
    split; the entry stored in ``out_dir`` (default: the cache folder), or None when the gate refused
    it (the report says why)."""
    import openvino

    if not 1 <= calibration <= MAX_CALIBRATION_IMAGES:
        raise ValueError(f"calibration images: 1 to {MAX_CALIBRATION_IMAGES}, not {calibration}")
    spec = DataSpec.load(data)
    choice = EngineChoice(weights, engine="openvino", precision="fp32", device="cpu", cache_dir=cache_dir,
                          rect=rect)  # fmt: skip
    fp32 = build_detector(choice)
    model = fp32.model
    assert isinstance(model, CompiledYOLO)
    version = engine_version("openvino")
    cache = EngineCache(cache_dir or default_cache_dir())
    fp32_entry = cache.find(EntryKey(fp32.checkpoint_sha256, "openvino", version, "fp32"))
    assert fp32_entry is not None  # build_detector just made or checked it
    images = calibration_images(spec.splits["train"], calibration)
    batches = [model.letterbox.normalisation(model.letterbox([image.numpy()])[0]) for image in images]
    quantized = quantize_openvino(fp32_entry.path(MODEL_FILES["openvino"]), batches)
    scratch = cache.root / f".int8-{fp32.checkpoint_sha256[:16]}.xml"
    openvino.save_model(quantized, str(scratch), compress_to_fp16=False)
    try:
        engine = OpenVINOEngine(scratch, precision="int8", normalisation=model.letterbox.normalisation)
        int8 = CompiledYOLO(CompiledDetector(engine, model.letterbox, class_names=model.class_names,
                                             decode=model.decode_config))  # fmt: skip
        val = YoloDataset(spec.splits["val"])
        reports = [_score(detector, val, model.class_names) for detector in (model, int8)]
        report = GateReport(
            fp32_map50=reports[0].map50, int8_map50=reports[1].map50, fp32_map50_95=reports[0].map50_95,
            int8_map50_95=reports[1].map50_95, fp32_ms_per_image=_ms(reports[0]),
            int8_ms_per_image=_ms(reports[1]), max_drop=max_drop, calibration_images=len(images),
            val_images=len(val),
        )  # fmt: skip
        log.info("int8 gate: %s", report.reason())
        if not report.passed:
            return report, None

        def write(folder: Path) -> dict[str, object]:
            openvino.save_model(quantized, str(folder / MODEL_FILES["openvino"]), compress_to_fp16=False)
            return {"gate": report.summary(), "data": str(data), "fp32_scopes": list(FP32_SCOPES),
                    "serving": fp32_entry.manifest["serving"]}

        key = EntryKey(fp32.checkpoint_sha256, "openvino", version, "int8")
        return report, EngineCache(out_dir or cache.root).store(key, write)
    finally:
        scratch.unlink(missing_ok=True)
        scratch.with_suffix(".bin").unlink(missing_ok=True)


def _score(detector: CompiledYOLO, dataset: YoloDataset, class_names: tuple[str, ...]) -> EvalReport:
    threshold = detector.score_thresh
    detector.score_thresh = 0.001  # the full PR curve for mAP, as `vigil eval` does
    try:
        return evaluate(detector, dataset, class_names, batch_size=8)
    finally:
        detector.score_thresh = threshold


def _ms(report: EvalReport) -> float:
    """ms per image, building the model for each new input shape (``compile``) left out."""
    return round(float(sum(ms for stage, ms in report.ms_per_image.items() if stage != "compile")), 2)
