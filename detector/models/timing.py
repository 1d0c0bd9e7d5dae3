"""Per-stage wall time of a prediction (preprocess / inference / nms), for evaluation reports."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch


class StageTimer:
    """Adds each stage's seconds into ``timings`` (a no-op when it is None); synchronises CUDA
    around a stage so GPU time lands in the right stage."""

    def __init__(self, timings: dict[str, float] | None, device: torch.device) -> None:
        self.timings, self.device = timings, device

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.timings is None:
            yield
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
