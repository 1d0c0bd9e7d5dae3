"""The dense network in OpenVINO: compiled once per input shape, for the lowest latency.

A model compiled for a static shape ran 1.3–2.6× faster here than the same model compiled with
dynamic height and width (2-core AVX-512 host, 384 px, batch 1), so each (N, H, W) the letterbox
produces is compiled on first use and kept (a few per camera aspect ratio, ~0.3–1 s each).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np

from detector.models.errors import ModelLoadError

log = logging.getLogger(__name__)
MAX_SHAPES = 8
"""Compiled shapes kept; the least recently used beyond this is released."""


PRELOADED_ALLOCATORS = ("tcmalloc", "jemalloc", "mimalloc")


def allocator_conflict() -> str | None:
    """The preloaded allocator mapped into this process, under which OpenVINO aborts while it
    compiles a model (``free(): invalid pointer``; openvinotoolkit/openvino#28551), or None."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    return next((name for name in PRELOADED_ALLOCATORS if f"lib{name}" in maps), None)


def version() -> str:
    import openvino

    return openvino.__version__.split("-")[0]


class OpenVINOEngine:
    name = "openvino"
    batched = False

    def __init__(self, xml: str | Path, *, precision: str, threads: int | None = None) -> None:
        import openvino

        self.precision = precision
        self._core = openvino.Core()
        try:
            self._model = self._core.read_model(str(xml))
        except RuntimeError as error:  # what openvino raises for a file it cannot parse
            raise ModelLoadError(f"openvino cannot load {Path(xml).name}: {error}") from error
        self._config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if precision == "fp32":  # no silent bf16 on CPUs that have it: fp32 means fp32
            self._config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads is not None:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self._requests: OrderedDict[tuple[int, ...], object] = OrderedDict()

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        request = self._request(batch.shape)
        outputs = request.infer({0: batch})
        return tuple(np.asarray(outputs[index]) for index in (0, 1))  # type: ignore[return-value]

    def _request(self, shape: tuple[int, ...]) -> object:
        request = self._requests.get(shape)
        if request is not None:
            self._requests.move_to_end(shape)
            return request
        model = self._model.clone()
        model.reshape({0: list(shape)})
        request = self._core.compile_model(model, "CPU", self._config).create_infer_request()
        log.debug("openvino: compiled %s for input %s", self.precision, shape)
        self._requests[shape] = request
        if len(self._requests) > MAX_SHAPES:
            self._requests.popitem(last=False)
        return request
