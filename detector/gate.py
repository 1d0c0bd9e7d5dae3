"""Motion gating: which of a camera's frames go to the model, and the rules that keep it safe.

A frame is inferred when (the first that applies is its ``reason``):

    off        gating is off for the camera
    warmup     one of the first ``warmup_frames`` after the camera started, was gained, or resumed:
               a gap of more than ``max_interval_s``, its clock going back, its sequence restarting,
               its size changing (the background starts again)
    motion     the motion detector found a region of change
    hold       within ``hold_s`` after a frame with detections (tracks and alerts see every frame
               while something is there, even if it stands still)
    interval   ``max_interval_s`` have passed since the last inferred frame (frame time, ``ts_ns``)

and skipped otherwise. Every frame, inferred or not, goes through the motion detector, so its
background stays current. Pure logic on frame timestamps, no wall clock; :meth:`MotionGate.hold`
may be called from another thread (the inference thread) than :meth:`MotionGate.decide`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal

from detector.motion import Motion, MotionDetector
from shared.config import MotionConfig
from shared.schemas import Frame

InferReason = Literal["off", "warmup", "motion", "hold", "interval"]


@dataclass(frozen=True)
class GateDecision:
    reason: InferReason | None
    """Why the frame is inferred; None: skipped (no motion)."""
    motion: Motion | None
    """The frame's motion (None when gating is off): the boxes for region inference."""

    @property
    def infer(self) -> bool:
        return self.reason is not None


INFER_UNGATED = GateDecision(reason="off", motion=None)


@dataclass(frozen=True)
class _Seen:
    seq: int
    ts_ns: int
    size: tuple[int, int]


class MotionGate:
    """One camera's gate (see the module docstring)."""

    def __init__(self, config: MotionConfig) -> None:
        self.config = config
        self._motion = MotionDetector(config) if config.enabled else None
        self._interval_ns = round(config.max_interval_s * 1e9)
        self._hold_ns = round(config.hold_s * 1e9)
        self._warmup_left = config.warmup_frames
        self._last_seen: _Seen | None = None
        self._last_inferred_ns: int | None = None
        self._hold_until_ns = 0
        self._hold_lock = threading.Lock()

    def decide(self, frame: Frame) -> GateDecision:
        """Whether to infer the frame, and why. Raises :class:`~shared.errors.DecodeError` for
        corrupt data: the frame is not recorded then (only a restart its gap called for is done)."""
        detector = self._motion
        if detector is None:
            return INFER_UNGATED
        if self._resumed(frame):
            self._restart(detector)
        motion = detector.detect(frame)
        reason = self._reason(frame, motion)
        self._last_seen = _Seen(frame.seq, frame.ts_ns, (frame.width, frame.height))
        if reason is not None:
            self._last_inferred_ns = frame.ts_ns
        return GateDecision(reason=reason, motion=motion)

    def hold(self, ts_ns: int) -> None:
        """The frame at ``ts_ns`` had detections: infer every frame up to ``hold_s`` after it."""
        with self._hold_lock:
            self._hold_until_ns = max(self._hold_until_ns, ts_ns + self._hold_ns)

    def _resumed(self, frame: Frame) -> bool:
        last = self._last_seen
        if last is None:
            return True
        gap_ns = frame.ts_ns - last.ts_ns
        return (
            gap_ns < 0 or gap_ns > self._interval_ns or frame.seq < last.seq
            or (frame.width, frame.height) != last.size
        )  # fmt: skip

    def _restart(self, detector: MotionDetector) -> None:
        detector.reset()
        self._warmup_left = self.config.warmup_frames
        self._last_inferred_ns = None
        with self._hold_lock:
            self._hold_until_ns = 0

    def _reason(self, frame: Frame, motion: Motion) -> InferReason | None:
        if self._warmup_left > 0:
            self._warmup_left -= 1
            return "warmup"
        if motion.boxes:
            return "motion"
        with self._hold_lock:
            if frame.ts_ns < self._hold_until_ns:
                return "hold"
        if self._last_inferred_ns is None or frame.ts_ns - self._last_inferred_ns >= self._interval_ns:
            return "interval"
        return None
