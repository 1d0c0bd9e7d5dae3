"""A :class:`~detector.engines.compiled.CompiledDetector` behind the torch
:class:`~detector.models.detector.Detector` contract (CHW tensors in, tensors out), for the code
that speaks it: evaluation, the INT8 gate, ``auto``'s timing, benchmarks. The service runs the
compiled detector itself, in numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from detector.engines.compiled import CompiledDetector, DenseEngine
from detector.models.detector import Detector
from detector.models.timing import StageTimer
from detector.models.transform import LetterboxTransform
from detector.postprocess import DecodeConfig, Letterbox


def letterbox_of(transform: LetterboxTransform) -> Letterbox:
    """The numpy letterbox with the geometry and normalisation of a model's torch transform."""
    mean, std = (tuple(float(v) for v in buffer.flatten()) for buffer in (transform.mean, transform.std))
    return Letterbox(transform.geometry, mean, std, transform.pad_value)  # type: ignore[arg-type]


class CompiledYOLO(Detector):
    loss_names: ClassVar[tuple[str, ...]] = ()
    box_loss_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, compiled: CompiledDetector) -> None:
        super().__init__(class_names=compiled.class_names, input_size=compiled.input_size)
        self.compiled = compiled

    @classmethod
    def of(cls, engine: DenseEngine, transform: LetterboxTransform, *, class_names: Sequence[str],
           decode: DecodeConfig) -> CompiledYOLO:  # fmt: skip
        return cls(CompiledDetector(engine, letterbox_of(transform), class_names=class_names, decode=decode))

    @property
    def score_thresh(self) -> float:
        return self.compiled.score_thresh

    @score_thresh.setter
    def score_thresh(self, value: float) -> None:
        self.compiled.score_thresh = value

    @property
    def decode_config(self) -> DecodeConfig:
        return self.compiled.decode_config

    @property
    def letterbox(self) -> Letterbox:
        return self.compiled.letterbox

    def _predict(self, images: list[Tensor], timer: StageTimer) -> list[dict[str, Tensor]]:
        arrays = [image.cpu().numpy() for image in images]
        found = self.compiled.predict(arrays, timings=timer.timings)
        return [{key: torch.from_numpy(value) for key, value in item.items()} for item in found]
