"""Dynamic batching across cameras, real time first.

A batch closes at ``max_batch`` frames or ``max_wait`` after its first frame arrived, whichever
comes first. Each camera has one slot holding its newest frame: a newer frame replaces an older
one that was not processed yet (dropped as ``superseded``), and a frame older than
``max_frame_age`` (capture clock vs now) is dropped as ``stale`` instead of processed late. So
under overload throughput degrades, latency does not: work never queues up behind old frames.
Pure logic: the clock is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.schemas import Box, Frame

DropCallback = Callable[[str, str], None]
"""Called with (camera, reason) for every frame dropped."""


@dataclass(frozen=True)
class Pending:
    frame: Frame
    arrived: float
    """Monotonic seconds when the frame reached the batcher."""
    motion: tuple[Box, ...] = ()
    """The frame's motion boxes (``detector/gate.py``), for region inference."""


class DynamicBatcher:
    def __init__(
        self, *, max_batch: int, max_wait_s: float, max_frame_age_s: float, on_drop: DropCallback
    ) -> None:
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_frame_age_ns = int(max_frame_age_s * 1e9)
        self._on_drop = on_drop
        self._slots: dict[str, Pending] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def add(self, frame: Frame, *, now: float, now_ns: int, motion: tuple[Box, ...] = ()) -> None:
        """Offer a frame (and its ``motion`` boxes); it takes its camera's slot unless it is stale or
        older than the slot's."""
        if now_ns - frame.ts_ns > self.max_frame_age_ns:
            self._on_drop(frame.camera, "stale")
            return
        current = self._slots.get(frame.camera)
        arrived = now
        if current is not None:
            self._on_drop(frame.camera, "superseded")  # one of the two frames goes
            if current.frame.seq >= frame.seq:
                return
            arrived = current.arrived  # the camera has been waiting since its first pending frame
        self._slots[frame.camera] = Pending(frame, arrived, motion)

    def forget(self, camera: str) -> None:
        """Drop a camera's pending frame (its lease was lost)."""
        if self._slots.pop(camera, None) is not None:
            self._on_drop(camera, "not_owned")

    def wait_s(self, now: float) -> float | None:
        """Seconds until the current batch is due (0: due now), or None when nothing is pending."""
        if not self._slots:
            return None
        if len(self._slots) >= self.max_batch:
            return 0.0
        first = min(pending.arrived for pending in self._slots.values())
        return max(0.0, first + self.max_wait_s - now)

    def ready(self, now: float) -> bool:
        wait = self.wait_s(now)
        return wait is not None and wait <= 0

    def take(self, *, now_ns: int) -> list[Pending]:
        """Up to ``max_batch`` frames, those waiting longest first; stale ones are dropped."""
        chosen = sorted(self._slots.values(), key=lambda pending: pending.arrived)[: self.max_batch]
        batch = []
        for pending in chosen:
            del self._slots[pending.frame.camera]
            if now_ns - pending.frame.ts_ns > self.max_frame_age_ns:
                self._on_drop(pending.frame.camera, "stale")
            else:
                batch.append(pending)
        return batch
