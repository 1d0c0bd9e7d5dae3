"""The dense network in ONNX Runtime (CPU execution provider; dynamic batch, height and width), on the
letterbox's ``uint8`` pixels normalised in numpy (:class:`~detector.postprocess.Normalisation`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.engines.compiled import OneAtATime
from detector.models.errors import ModelLoadError
from detector.postprocess import Normalisation


def version() -> str:
    import onnxruntime

    return onnxruntime.__version__


class ONNXRuntimeEngine(OneAtATime):
    name = "onnxruntime"
    batched = False

    def __init__(self, onnx: str | Path, *, precision: str, normalisation: Normalisation,
                 threads: int | None = None) -> None:  # fmt: skip
        import onnxruntime

        self.precision, self.normalisation = precision, normalisation
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            options.intra_op_num_threads = threads
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

        try:
            self._session = onnxruntime.InferenceSession(
                str(onnx), options, providers=["CPUExecutionProvider"]
            )
        except (ort_errors.Fail, ort_errors.InvalidProtobuf, ort_errors.InvalidGraph,
                ort_errors.NoSuchFile, ort_errors.InvalidArgument) as error:  # fmt: skip
            raise ModelLoadError(f"onnxruntime cannot load {Path(onnx).name}: {error}") from error
        self._input = self._session.get_inputs()[0].name

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores, boxes = self._session.run(["scores", "boxes"], {self._input: self.normalisation(batch)})
        return scores, boxes
