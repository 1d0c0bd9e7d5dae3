"""DetectorService: the cameras this replica owns → dynamic batches → model → tracker → Redis.

Two threads: the *reader* renews leases, reads the owned frame streams, keeps the newest frame
per camera in the :class:`DynamicBatcher`, and decodes a batch as soon as the model is free; the
*inference* thread runs the model, the per-camera tracker, the second-stage verifier if
``detector.verifier`` is set (``detector/verifier.py``), and publishes one Detections entry per
frame to the camera's own detections stream. Under load a full batch is decoded while the model
works on the previous one (double buffering); frames that arrive while the model is busy replace
older ones instead of queueing. Before a frame reaches the batcher, its camera's
:class:`~detector.gate.MotionGate` may skip it (nothing moved; ``detector.motion``): a skipped frame
is counted, publishes nothing and leaves the camera's tracks as they are. With
``detector.regions`` enabled the inference thread also runs the model on native-resolution crops
around the camera's tracks and the frame's motion boxes (``detector/region_runner.py``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis

from detector.batching import DynamicBatcher
from detector.gate import INFER_UNGATED, GateDecision, MotionGate
from detector.metrics import DetectorMetrics
from detector.region_runner import RegionRunner
from detector.runner import DecodedFrame, DetectorRunner
from detector.track_ids import TrackIds
from detector.tracking import MultiCameraTracker
from shared import keys
from shared.config import DetectorConfig, MotionConfig
from shared.errors import DecodeError, SchemaError, StoreUnavailable
from shared.logs import LIMITED_INTERVAL_S, log_limited
from shared.redis import call
from shared.schemas import Box, Detection, Detections, Frame
from shared.service import LeasedService
from shared.streams import read_streams

if TYPE_CHECKING:
    from detector.verifier import TrackVerifier

log = logging.getLogger(__name__)
READ_COUNT = 16
"""Entries read per stream and call; a stream further behind jumps to its newest entry."""


class FrameReader:
    """Cursors over the owned cameras' frame streams; returns (camera, fields) entries."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self.cursors: dict[str, bytes | str] = {}

    def follow(self, camera: str) -> list[tuple[str, dict]]:
        """Start following a camera at its newest entry (returned, so it can be processed)."""
        newest = call(lambda: self._client.xrevrange(keys.frames_stream(camera), count=1))
        self.cursors[camera] = newest[0][0] if newest else "0-0"
        return [(camera, newest[0][1])] if newest else []

    def unfollow(self, camera: str) -> None:
        self.cursors.pop(camera, None)

    def read(self, block_ms: int) -> list[tuple[str, dict]]:
        if not self.cursors:
            time.sleep(block_ms / 1000)
            return []
        cameras = {keys.frames_stream(camera): camera for camera in self.cursors}
        streams = {stream: self.cursors[camera] for stream, camera in cameras.items()}
        entries = []
        replies = read_streams(self._client, streams, count=READ_COUNT, block_ms=block_ms)
        for stream, stream_entries in replies:
            camera = cameras[stream]
            self.cursors[camera] = stream_entries[-1][0]
            entries += [(camera, fields) for _id, fields in stream_entries]
            if len(stream_entries) == READ_COUNT:  # behind: take the newest, skip the rest
                newest = call(lambda s=stream: self._client.xrevrange(s, count=1))
                if newest and newest[0][0] != stream_entries[-1][0]:
                    self.cursors[camera] = newest[0][0]
                    entries.append((camera, newest[0][1]))
        return entries


@dataclass(frozen=True)
class _Batch:
    """What the reader thread hands the inference thread: decoded frames and their motion boxes."""

    items: list[DecodedFrame]
    motion: dict[tuple[str, int], tuple[Box, ...]]
    """By (camera, seq)."""


class DetectorService(LeasedService):
    lease_group = "detect"

    def __init__(
        self,
        config: DetectorConfig,
        cameras: Sequence[str],
        *,
        client: redis.Redis,
        runner: DetectorRunner,
        metrics: DetectorMetrics | None = None,
        max_frames: int | None = None,
        motion: Mapping[str, MotionConfig] | None = None,
    ) -> None:
        """``motion``: per-camera motion gating (``VigilConfig.motion_for``); other cameras use
        ``config.motion``."""
        super().__init__(config, cameras, client=client, metrics=metrics or DetectorMetrics())
        self.config: DetectorConfig = config
        self.metrics: DetectorMetrics
        self.runner = runner
        self.metrics.model_loaded.set(1)
        self.metrics.engine_info.labels(*runner.engine_precision, *runner.engine_requested).set(1)
        self._max_frames = max_frames
        self._max_skew_ns = int(config.max_clock_skew_s * 1e9)
        self._reader = FrameReader(client)
        self._batcher = DynamicBatcher(
            max_batch=config.max_batch,
            max_wait_s=config.max_wait_ms / 1000,
            max_frame_age_s=config.max_frame_age_s,
            on_drop=self.metrics.drop,
        )
        self.tracker = MultiCameraTracker(config.tracker)
        self._motion = dict(motion or {})
        self._gates: dict[str, MotionGate] = {}
        """Owned cameras' motion gates: the reader thread decides, the inference thread holds."""
        self.verifier: TrackVerifier | None = None
        if config.verifier is not None:  # a torch model: imported only when it is on
            from detector.verifier import TrackVerifier

            self.verifier = TrackVerifier.from_config(config.verifier, device=runner.device,
                                                      labels=runner.class_names)  # fmt: skip
        self.regions = RegionRunner(runner, config.regions) if config.regions.enabled else None
        self._handoff: queue.Queue[_Batch | None] = queue.Queue(maxsize=1)
        self._model_busy = threading.Event()
        self._inference = threading.Thread(target=self._inference_loop, name="inference", daemon=True)
        self.processed = 0
        self.skipped = 0
        """Frames the motion gate kept from the model."""

    @property
    def readiness_note(self) -> str | None:
        fallback = self.runner.engine_fallback
        return None if fallback is None else f"engine fallback to {self.runner.engine}: {fallback}"

    # -- reader thread (the service loop) ------------------------------------------------------

    def on_start(self) -> None:
        self._inference.start()
        log.info("detector %s starting: %s, %d cameras", self.instance, self.runner.name, len(self.cameras))

    def on_gained(self, camera: str) -> None:
        self.metrics.init_camera(camera)
        self.tracker.start(camera, next_id=TrackIds(self.client, camera))
        self._gates[camera] = MotionGate(self._motion.get(camera, self.config.motion))
        for _camera, fields in self._reader.follow(camera):
            self._offer(camera, fields)

    def on_lost(self, camera: str) -> None:
        self._reader.unfollow(camera)
        self._gates.pop(camera, None)
        self._batcher.forget(camera)
        self.tracker.drop(camera)
        if self.verifier is not None:
            self.verifier.forget(camera)

    def work(self, *, until: float) -> None:
        """Read the owned streams (blocking at most until a batch is due or the next lease round),
        offer the frames to the batcher, and hand a due batch to the model."""
        for camera, fields in self._reader.read(self._block_ms(until)):
            self._offer(camera, fields)
        self._dispatch()

    def on_stop(self) -> None:
        if self._inference.is_alive():
            self._handoff.put(None)
            self._inference.join(timeout=30)

    def _block_ms(self, next_lease_round: float) -> int:
        now = time.monotonic()
        wait = self._batcher.wait_s(now)
        if wait is not None and wait <= 0 and not self._can_dispatch():
            wait = 0.005  # a batch is due but the model is busy: keep reading the newest frames
        limit = max(0.0, next_lease_round - now)
        return int(1000 * min(limit, 0.5 if wait is None else wait))

    def _offer(self, camera: str, fields: dict) -> None:
        try:
            frame = Frame.decode(fields)
        except SchemaError as error:
            self.metrics.drop(camera, "malformed")
            log_limited(log, f"malformed:{camera}", LIMITED_INTERVAL_S,
                        "camera %s: malformed frame entry skipped (%s)", camera, error)  # fmt: skip
            return
        if frame.camera != camera:
            self.metrics.drop(camera, "malformed")
            return
        now_ns = time.time_ns()
        if frame.ts_ns > now_ns + self._max_skew_ns:  # a camera host whose clock is ahead
            self.metrics.drop(camera, "clock_skew")
            return
        decision = self._decide(frame)
        if decision is None or not decision.infer:
            return
        motion = decision.motion.boxes if decision.motion is not None else ()
        self._batcher.add(frame, now=time.monotonic(), now_ns=now_ns, motion=motion)

    def _decide(self, frame: Frame) -> GateDecision | None:
        """The camera's motion gate on the frame (a skip is counted); None when it would not decode."""
        gate = self._gates.get(frame.camera)
        if gate is None:
            return INFER_UNGATED
        try:
            decision = gate.decide(frame)
        except DecodeError as error:
            self._decode_failed(frame, error)
            return None
        if not decision.infer:
            self.skipped += 1
            self.metrics.frames_skipped.labels(frame.camera, "no_motion").inc()
        return decision

    def _decode_failed(self, frame: Frame, error: DecodeError) -> None:
        self.metrics.drop(frame.camera, "decode_failed")
        log_limited(log, f"decode_failed:{frame.camera}", LIMITED_INTERVAL_S,
                    "camera %s seq %d: %s", frame.camera, frame.seq, error)  # fmt: skip

    def _can_dispatch(self) -> bool:
        """The model is free, or it is busy and a *full* batch can be decoded ahead of it (so under
        load the model never waits for decoding, while a partial batch keeps taking newer frames)."""
        if self._handoff.full():
            return False
        return not self._model_busy.is_set() or len(self._batcher) >= self._batcher.max_batch

    def _dispatch(self) -> None:
        if not self._batcher.ready(time.monotonic()) or not self._can_dispatch():
            return
        taken = self._batcher.take(now_ns=time.time_ns())
        frames = [pending.frame for pending in taken]
        started = time.perf_counter()
        decoded, failed = self.runner.decode_batch(frames)
        if frames:
            per_frame = (time.perf_counter() - started) / len(frames)
            for _ in frames:
                self.metrics.decode_seconds.observe(per_frame)
        for frame, error in failed:
            self._decode_failed(frame, error)
        if decoded:
            motion = {(pending.frame.camera, pending.frame.seq): pending.motion for pending in taken}
            self._handoff.put(_Batch(decoded, motion))

    # -- inference thread ----------------------------------------------------------------------

    def _inference_loop(self) -> None:
        while (batch := self._handoff.get()) is not None:
            self._model_busy.set()
            try:
                self._process(batch)
            except (RuntimeError, ValueError) as error:  # torch's errors: a batch lost, not the service
                for item in batch.items:
                    self.metrics.drop(item.frame.camera, "inference_failed")
                log_limited(log, "inference_failed", LIMITED_INTERVAL_S,
                            "inference failed on a batch of %d frames (%s): %s", len(batch.items),
                            ", ".join(sorted({item.frame.camera for item in batch.items})), error,
                            level=logging.ERROR)  # fmt: skip
            finally:
                self._model_busy.clear()
            if self._max_frames is not None and self.processed >= self._max_frames:
                self.stop()

    def _process(self, handoff: _Batch) -> None:
        started_ns = time.time_ns()
        batch = handoff.items
        per_frame, seconds = self.runner.detect(batch)
        self.metrics.batch_size.observe(len(batch))
        self.metrics.inference_seconds.observe(seconds)
        timings_ms = {"inference": round(seconds * 1000, 2)}
        if self.regions is not None:
            per_frame = self._run_regions(self.regions, handoff, per_frame, timings_ms)
        tracked = [
            self.tracker.update(item.frame.camera, detections, time_s=item.frame.ts_ns / 1e9)
            for item, detections in zip(batch, per_frame, strict=True)
        ]
        self._hold_gates(batch, tracked)
        if self.verifier is not None:
            tracked, timings_ms["verify"] = self._verify(self.verifier, batch, tracked)
        messages = []
        for item, objects in zip(batch, tracked, strict=True):
            frame = item.frame
            queue_wait_ms = (started_ns - frame.ts_ns) / 1e6
            messages.append(Detections(
                camera=frame.camera, seq=frame.seq, ts_ns=frame.ts_ns, width=frame.width, height=frame.height,
                model=self.runner.name, objects=tuple(objects),
                timings_ms={"queue_wait": round(queue_wait_ms, 2), **timings_ms,
                            "total": round((time.time_ns() - frame.ts_ns) / 1e6, 2)},
            ))  # fmt: skip
            self.metrics.queue_lag_seconds.observe(max(0.0, queue_wait_ms / 1000))
        self._publish(messages)
        self.metrics.live_tracks.set(self.tracker.live_tracks())

    def _run_regions(
        self, regions: RegionRunner, handoff: _Batch, per_frame: list[list[Detection]],
        timings_ms: dict[str, float],
    ) -> list[list[Detection]]:  # fmt: skip
        """The batch's detections with those of its crops (``detector/region_runner.py``), planned
        around each camera's tracks (before this frame) and the frame's motion; adds the step's ms
        to ``timings_ms`` when a crop ran."""
        plans = [
            regions.plan(item.frame, tracks=self.tracker.track_boxes(item.frame.camera),
                         motion=handoff.motion.get((item.frame.camera, item.frame.seq), ()))
            for item in handoff.items
        ]  # fmt: skip
        if not any(plans):
            return per_frame
        outcome = regions.run(handoff.items, per_frame, plans)
        for item, crops, found in zip(handoff.items, outcome.crops, outcome.found, strict=True):
            self.metrics.regions.labels(item.frame.camera).inc(crops)
            self.metrics.region_detections.labels(item.frame.camera).inc(found)
        if any(outcome.crops):
            timings_ms["regions"] = round(outcome.seconds * 1000, 2)
        return outcome.detections

    def _hold_gates(self, batch: list[DecodedFrame], tracked: list[list[Detection]]) -> None:
        """Cameras with detections keep every frame inferred for ``hold_s`` (see detector/gate.py)."""
        for item, objects in zip(batch, tracked, strict=True):
            gate = self._gates.get(item.frame.camera)
            if objects and gate is not None:
                gate.hold(item.frame.ts_ns)

    def _verify(
        self, verifier: TrackVerifier, batch: list[DecodedFrame], tracked: list[list[Detection]]
    ) -> tuple[list[list[Detection]], float]:
        """The verifier's pass over a tracked batch: the detections with ``verify_score``, and its ms."""
        outcome = verifier.verify(list(zip(batch, tracked, strict=True)))
        for item, count in zip(batch, outcome.verified, strict=True):
            if count:
                self.metrics.verifications.labels(item.frame.camera).inc(count)
        if any(outcome.verified):
            self.metrics.verify_seconds.observe(outcome.seconds)
        for camera in {item.frame.camera for item in batch}:
            verifier.retain(camera, self.tracker.track_ids(camera))
        return outcome.detections, round(outcome.seconds * 1000, 2)

    def _publish(self, messages: list[Detections]) -> None:
        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            for message in messages:
                pipe.xadd(keys.detections_stream(message.camera), message.encode(),
                          maxlen=self.config.detections_maxlen, approximate=True)  # fmt: skip
            pipe.execute()

        try:
            call(run)
        except StoreUnavailable:
            for message in messages:
                self.metrics.drop(message.camera, "redis_unavailable")
            return
        now_ns = time.time_ns()
        for message in messages:
            self.processed += 1
            self.metrics.frames_processed.labels(message.camera).inc()
            self.metrics.latency_seconds.observe(max(0.0, (now_ns - message.ts_ns) / 1e9))
            for obj in message.objects:
                self.metrics.detections.labels(message.camera, obj.label).inc()
