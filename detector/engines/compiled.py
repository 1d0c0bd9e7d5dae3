"""A YOLO checkpoint run by a compiled engine, in numpy: letterbox → engine → the shared decode.

The engine runs only the dense network (letterboxed pixels, normalised by the engine → scores and
boxes for every anchor point, as :class:`detector.export.DenseYOLO` exports it). The letterbox
before and the decode and NMS after are ``detector/postprocess.py``, the post-processing every
engine shares. What serving needs besides the model files (:class:`ServingSpec`) is kept in the
cache entry's manifest, so the detector service loads a compiled model without the checkpoint, and
without torch.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from detector.postprocess import (
    DecodeConfig,
    DecodedByConfig,
    Found,
    Letterbox,
    LetterboxGeometry,
    chw,
    decode_dense,
)


class DenseEngine(Protocol):
    """A compiled dense network: the letterbox's ``(N, H, W, 3)`` ``uint8`` RGB pixels → scores
    ``(N, A, C)``, boxes ``(N, A, 4)``; the engine applies the network's input normalisation."""

    name: str
    """``openvino`` or ``onnxruntime``."""
    precision: str
    """``fp32`` or ``int8``."""
    batched: bool
    """Whether a batch goes to :meth:`infer` whole (padded to its largest image) or image by image."""
    compile_seconds: float
    """Seconds spent so far building the model for input shapes met for the first time (0 for an
    engine with dynamic shapes)."""

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def infer_many(self, batches: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`infer` of each batch, in order; an engine may run them concurrently."""
        ...


class OneAtATime:
    """``infer_many`` as one ``infer`` after another (engines without a concurrent mode)."""

    compile_seconds = 0.0

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def infer_many(self, batches: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.infer(batch) for batch in batches]


@dataclass(frozen=True)
class ServingSpec:
    """A checkpoint's serving facts, written into each of its cache entries (``serving``)."""

    name: str
    """The checkpoint's name (logs, the detections' ``model`` field)."""
    class_names: tuple[str, ...]
    input_size: int
    stride: int
    """The network's largest stride: a rectangular letterbox pads to a multiple of it."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pad_value: float
    decode: DecodeConfig

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServingSpec:
        """Raises ValueError for a spec that is missing or malformed."""
        try:
            return cls(
                name=str(data["name"]), class_names=tuple(str(c) for c in data["class_names"]),
                input_size=int(data["input_size"]), stride=int(data["stride"]),
                mean=tuple(float(v) for v in data["mean"]), std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
                pad_value=float(data["pad_value"]), decode=DecodeConfig(**data["decode"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"serving spec malformed: {error!r}") from None


class CompiledDetector(DecodedByConfig):
    """Letterbox → engine → shared decode and NMS, on numpy CHW RGB images (``uint8`` or float
    0–1) of any size; boxes come back in each image's pixels.

    OpenVINO and ONNX Runtime take one image per call (``batched`` False): on the CPU a batch was no
    cheaper per image than single images (both use every core for one image; ``bench/engines.py``),
    and each image then gets its own rectangular shape instead of the batch's largest. The images of
    one call go to the engine together (``infer_many``), which OpenVINO runs concurrently.
    """

    def __init__(self, engine: DenseEngine, letterbox: Letterbox, *, class_names: Sequence[str],
                 decode: DecodeConfig) -> None:  # fmt: skip
        self.engine, self.letterbox, self.decode_config = engine, letterbox, decode
        self.class_names = tuple(class_names)

    @property
    def input_size(self) -> int:
        return self.letterbox.geometry.size

    def image(self, rgb: np.ndarray) -> np.ndarray:
        """An HWC RGB ``uint8`` array as :meth:`predict` takes it (the runner's ``FrameModel``)."""
        return chw(rgb)

    @classmethod
    def from_spec(cls, engine: DenseEngine, spec: ServingSpec, *, rect: bool,
                  **decode_overrides: float) -> CompiledDetector:  # fmt: skip
        geometry = LetterboxGeometry(spec.input_size, rect=rect, stride=spec.stride)
        decode = DecodeConfig(**{**asdict(spec.decode), **decode_overrides})
        return cls(engine, Letterbox(geometry, spec.mean, spec.std, spec.pad_value),
                   class_names=spec.class_names, decode=decode)  # fmt: skip

    def predict(
        self, images: Sequence[np.ndarray], *, timings: dict[str, float] | None = None
    ) -> list[Found]:
        """Detections per image; adds the seconds of each stage (``preprocess``, ``inference``,
        ``nms``) to ``timings``, and those of building the engine's model for a new input shape,
        when it did, as ``compile`` (not ``inference``: a one-off, however many images follow)."""
        chunks = [list(images)] if self.engine.batched else [[image] for image in images]
        with _stage(timings, "preprocess"):
            prepared = [self.letterbox(chunk) for chunk in chunks]
        compiled_before = self.engine.compile_seconds
        with _stage(timings, "inference"):
            outputs = self.engine.infer_many([batch for batch, _metas in prepared])
        if timings is not None and (compiling := self.engine.compile_seconds - compiled_before) > 0:
            timings["inference"] -= compiling
            timings["compile"] = timings.get("compile", 0.0) + compiling
        results: list[Found] = []
        with _stage(timings, "nms"):
            for (_batch, metas), (scores, boxes) in zip(prepared, outputs, strict=True):
                results += self.letterbox.postprocess(decode_dense(scores, boxes, self.decode_config), metas)
        return results


@contextmanager
def _stage(timings: dict[str, float] | None, name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
