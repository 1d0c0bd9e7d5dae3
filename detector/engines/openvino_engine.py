"""The dense network in OpenVINO: compiled once per input shape, for latency and for throughput.

It takes the letterbox's ``uint8`` NHWC pixels: OpenVINO's pre-processing, compiled into the model,
converts them to float, normalises them and makes them NCHW (the outputs equal those of the float
model on the numpy-normalised batch exactly, and the letterbox's 1.7 ms a 512×384 frame of numpy
normalisation is gone; 2-core Xeon with AMX).

A model compiled for a static shape ran 1.3–2.6× faster here than the same model compiled with
dynamic height and width (2-core AVX-512 host, 384 px, batch 1), so each (N, H, W) the letterbox
produces is compiled on first use and kept (a few per camera aspect ratio, ~0.3–1 s each).

One image goes to a model compiled for the lowest latency (every core on it). Several images of a
batch go to a model compiled for throughput (OpenVINO's streams, one image per stream, here two
streams of one core each), run concurrently: the shipped INT8 model at 384×224 on the 2-core AVX2
host made 87–89 images/s that way against 72–74 one after another, while one image alone took
20 ms in a stream against 13 ms with both cores.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.models.errors import ModelLoadError
from detector.postprocess import Normalisation

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


@dataclass(frozen=True)
class LayerTime:
    """One executed layer of a compiled model: its node name (the exported module path, e.g.
    ``/backbone/stages.1/...``), OpenVINO's layer type, the kernel that ran it and its mean ms."""

    name: str
    kind: str
    kernel: str
    ms: float


class OpenVINOEngine:
    name = "openvino"
    batched = False

    def __init__(self, xml: str | Path, *, precision: str, normalisation: Normalisation,
                 threads: int | None = None) -> None:  # fmt: skip
        import openvino

        self.precision, self.normalisation = precision, normalisation
        self._core = openvino.Core()
        try:
            self._model = self._core.read_model(str(xml))
        except RuntimeError as error:  # what openvino raises for a file it cannot parse
            raise ModelLoadError(f"openvino cannot load {Path(xml).name}: {error}") from error
        self._config: dict[str, object] = {}
        if precision == "fp32":  # no silent bf16 on CPUs that have it: fp32 means fp32
            self._config["INFERENCE_PRECISION_HINT"] = "f32"
        if threads is not None:
            self._config["INFERENCE_NUM_THREADS"] = threads
        self.compile_seconds = 0.0
        self._requests: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._queues: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        request = _cached(self._requests, batch.shape, lambda: self._compile(batch.shape, "LATENCY")
                          .create_infer_request())  # fmt: skip
        outputs = request.infer({0: batch})
        return np.asarray(outputs[0]), np.asarray(outputs[1])

    def infer_many(self, batches: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each batch's outputs, in order: one alone for latency, several concurrently (per shape)."""
        if len(batches) == 1:
            return [self.infer(batches[0])]
        outputs: list[Any] = [None] * len(batches)
        for shape in dict.fromkeys(batch.shape for batch in batches):
            queue = _cached(self._queues, shape, lambda shape=shape: self._queue(shape))
            for index, batch in enumerate(batches):
                if batch.shape == shape:
                    queue.start_async({0: batch}, (outputs, index))
            queue.wait_all()
        return outputs

    def layer_times(self, batch: np.ndarray, runs: int = 20) -> list[LayerTime]:
        """Mean ms per executed layer over ``runs`` latency inferences of ``batch`` (OpenVINO's
        performance counters, on a model compiled for this shape with them on): where the time goes."""
        config = {**self._config, "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True}
        compiled = self._core.compile_model(self._taking_pixels(batch.shape), "CPU", config)
        request = compiled.create_infer_request()
        request.infer({0: batch})  # the first run allocates
        totals: dict[tuple[str, str, str], float] = {}
        for _ in range(runs):
            request.infer({0: batch})
            for layer in request.profiling_info:
                key = (layer.node_name, layer.node_type, layer.exec_type)
                totals[key] = totals.get(key, 0.0) + layer.real_time.total_seconds() * 1000
        return [LayerTime(name, kind, kernel, ms / runs) for (name, kind, kernel), ms in totals.items()]

    def _queue(self, shape: tuple[int, ...]) -> Any:
        import openvino

        compiled = self._compile(shape, "THROUGHPUT")
        queue = openvino.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        queue.set_callback(_keep_outputs)
        return queue

    def _compile(self, shape: tuple[int, ...], hint: str) -> Any:
        started = time.perf_counter()
        model = self._taking_pixels(shape)
        compiled = self._core.compile_model(model, "CPU", {**self._config, "PERFORMANCE_HINT": hint})
        seconds = time.perf_counter() - started
        self.compile_seconds += seconds
        log.debug("openvino: compiled %s for input %s (%s) in %.2f s", self.precision, shape, hint.lower(),
                  seconds)  # fmt: skip
        return compiled

    def _taking_pixels(self, shape: tuple[int, ...]) -> Any:
        """The model for ``uint8`` NHWC batches of ``shape``, normalising them in its graph."""
        import openvino
        from openvino.preprocess import PrePostProcessor

        count, height, width, channels = shape
        model = self._model.clone()
        model.reshape({0: [count, channels, height, width]})
        steps = PrePostProcessor(model)
        steps.input().tensor().set_element_type(openvino.Type.u8).set_layout(openvino.Layout("NHWC"))
        steps.input().model().set_layout(openvino.Layout("NCHW"))
        steps.input().preprocess().convert_element_type(openvino.Type.f32) \
            .mean([255 * value for value in self.normalisation.mean]) \
            .scale([255 * value for value in self.normalisation.std])  # fmt: skip
        return steps.build()


def _keep_outputs(request: Any, into: tuple[list[Any], int]) -> None:
    """AsyncInferQueue's callback: copy the request's two outputs out before it is reused."""
    outputs, index = into
    outputs[index] = (request.get_output_tensor(0).data.copy(), request.get_output_tensor(1).data.copy())


def _cached(cache: OrderedDict[tuple[int, ...], Any], shape: tuple[int, ...], make: Callable[[], Any]) -> Any:
    """``cache[shape]``, made on first use; the least recently used beyond MAX_SHAPES is released."""
    if shape in cache:
        cache.move_to_end(shape)
        return cache[shape]
    cache[shape] = made = make()
    if len(cache) > MAX_SHAPES:
        cache.popitem(last=False)
    return made
