"""The detector service against a real Redis with a real (small, untrained) model on the CPU."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from detector.engines import serving
from detector.runner import DecodedFrame, DetectorRunner
from detector.service import DetectorService
from shared import keys
from shared.config import DetectorConfig, RedisConfig, VerifierConfig
from shared.redis import EmbeddedRedis, connect, free_port
from shared.schemas import Detection, Detections
from tests.detector.conftest import RECTANGLE, background_box, jpeg_frame, push, tiled_frame
from tests.support.services import running, wait_for


@pytest.fixture(scope="module")
def runner(tiny_checkpoint: Path) -> DetectorRunner:
    return DetectorRunner(tiny_checkpoint, score_thresh=0.0)


def detector_config(**overrides: object) -> DetectorConfig:
    settings: dict[str, object] = {"instance": "det-1", "metrics_port": None, "lease_ttl_s": 1.0,
                                   "max_batch": 4, "max_wait_ms": 20}  # fmt: skip
    settings.update(overrides)
    return DetectorConfig(**settings)  # type: ignore[arg-type]


def detections(client: redis.Redis) -> list[Detections]:
    """Every camera's detections entries, in the order they were added."""
    streams = client.scan_iter(match=keys.detections_stream("*"))
    entries = [entry for stream in streams for entry in client.xrange(stream)]
    entries.sort(key=lambda entry: tuple(map(int, entry[0].split(b"-"))))
    return [Detections.decode(fields) for _id, fields in entries]


def dropped(service: DetectorService, camera: str, reason: str) -> Callable[[], float]:
    return lambda: (
        service.metrics.registry.get_sample_value(
            "vigil_detector_frames_dropped_total", {"camera": camera, "reason": reason}
        )
        or 0.0
    )


def owns(client: redis.Redis, camera: str, instance: str = "det-1") -> Callable[[], bool]:
    return lambda: client.get(keys.lease_key("detect", camera)) == instance.encode()


def test_frames_in_detections_out_in_source_pixels(redis_client: redis.Redis, runner: DetectorRunner) -> None:
    service = DetectorService(detector_config(), ["small", "large"], client=redis_client, runner=runner)
    with running(service):
        assert wait_for(lambda: owns(redis_client, "small")() and owns(redis_client, "large")(), 10)
        for seq in range(3):
            push(redis_client, jpeg_frame("small", seq, 320, 240))
            push(redis_client, jpeg_frame("large", seq, 1280, 720))
            assert wait_for(lambda n=seq: len(detections(redis_client)) >= 2 * (n + 1), 10)
    out = {(d.camera, d.seq): d for d in detections(redis_client)}
    assert set(out) == {(camera, seq) for camera in ("small", "large") for seq in range(3)}
    for (camera, _seq), message in out.items():
        width, height = (320, 240) if camera == "small" else (1280, 720)
        assert (message.width, message.height) == (width, height)
        assert message.model.startswith("yolo-efficientnet_lite0@")
        assert {"queue_wait", "inference", "total"} <= set(message.timings_ms)
        boxes = [obj.box for obj in message.objects]
        assert boxes and all(0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height for x1, y1, x2, y2 in boxes)
        # the 1280x720 JPEG was decoded at 1/8 size; boxes must come back to full-frame pixels
        assert max(x2 for _x1, _y1, x2, _y2 in boxes) > 0.6 * width
        assert all(obj.label == "pistol" for obj in message.objects)
        assert all(obj.verify_score is None for obj in message.objects), "no verifier configured"
        assert "verify" not in message.timings_ms


def test_an_engine_that_cannot_run_falls_back_to_torch_and_says_so(
    redis_client: redis.Redis, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving, "installed", lambda engine: engine != "openvino")  # as if not installed
    fallen = DetectorRunner(tiny_checkpoint, engine="openvino", precision="fp32", engine_cache_dir=tmp_path,
                            fallback=True)  # fmt: skip
    assert fallen.engine == "torch-fp32"
    port = free_port()
    service = DetectorService(detector_config(metrics_port=port), ["cam"], client=redis_client, runner=fallen)
    with running(service):
        assert wait_for(owns(redis_client, "cam"), 10)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
            assert reply.status == 200
            assert reply.read().decode() == (
                "ready\nengine fallback to torch-fp32: openvino fp32: engine openvino is not installed "
                "(pip install openvino)\n"
            )
        push(redis_client, jpeg_frame("cam", 0, 320, 240))
        assert wait_for(lambda: len(detections(redis_client)) == 1, 10), "and it detects"
    info = {"engine": "torch", "precision": "fp32", "requested_engine": "openvino",
            "requested_precision": "fp32"}
    assert service.metrics.registry.get_sample_value("vigil_detector_engine_info", info) == 1


def test_malformed_and_stale_entries_are_skipped_and_counted(
    redis_client: redis.Redis, runner: DetectorRunner
) -> None:
    service = DetectorService(detector_config(), ["cam"], client=redis_client, runner=runner)
    stream = keys.frames_stream("cam")
    good = jpeg_frame("cam", 1).encode()
    with running(service):
        assert wait_for(owns(redis_client, "cam"), 10)
        for broken in (
            {k: v for k, v in good.items() if k != "seq"},  # missing field
            good | {"width": 0},  # zero dimension
            good | {"height": 100_000},  # huge dimension
            good | {"seq": "abc"},  # wrong type
            good | {"camera": "other"},  # entry of another camera in this stream
            good | {"codec": "raw"},  # raw with the wrong byte count
            {"garbage": "1"},
        ):
            redis_client.xadd(stream, broken)
        assert wait_for(lambda: dropped(service, "cam", "malformed")() == 7, 10)
        redis_client.xadd(stream, good | {"data": b"\xff\xd8 not really a jpeg"})
        assert wait_for(lambda: dropped(service, "cam", "decode_failed")() == 1, 10)
        push(redis_client, jpeg_frame("cam", 2, ts_ns=time.time_ns() - 60 * 10**9))
        assert wait_for(lambda: dropped(service, "cam", "stale")() == 1, 10)
        push(redis_client, jpeg_frame("cam", 3))
        assert wait_for(lambda: [d.seq for d in detections(redis_client)] == [3], 10), "still running"


def test_a_redis_restart_is_survived(private_redis: EmbeddedRedis, runner: DetectorRunner) -> None:
    client = connect(RedisConfig(url=private_redis.url, socket_timeout_s=1, connect_timeout_s=0.5))
    service = DetectorService(detector_config(), ["cam"], client=client, runner=runner)
    with running(service):
        assert wait_for(owns(client, "cam"), 10)
        push(client, jpeg_frame("cam", 1))
        assert wait_for(lambda: len(detections(client)) == 1, 10)
        private_redis.stop(kill=True)
        time.sleep(1.5)
        assert not service.ready
        private_redis.start()
        assert wait_for(owns(client, "cam"), 10), "the lease is taken again on the empty Redis"
        push(client, jpeg_frame("cam", 2))
        assert wait_for(lambda: [d.seq for d in detections(client)] == [2], 10)
        assert service.ready


def test_a_frame_from_a_clock_far_ahead_is_dropped_and_counted(
    redis_client: redis.Redis, runner: DetectorRunner
) -> None:
    service = DetectorService(detector_config(), ["cam"], client=redis_client, runner=runner)
    with running(service):
        assert wait_for(owns(redis_client, "cam"), 10)
        push(redis_client, jpeg_frame("cam", 0, ts_ns=time.time_ns() + 3600 * 10**9))
        assert wait_for(lambda: dropped(service, "cam", "clock_skew")() == 1, 10)
        push(redis_client, jpeg_frame("cam", 1))
        assert wait_for(lambda: [d.seq for d in detections(redis_client)] == [1], 10)


def test_an_extreme_aspect_frame_is_processed_not_fatal(
    redis_client: redis.Redis, runner: DetectorRunner
) -> None:
    """Before: a 16384x1 frame killed the detector (cv2.resize assertion on a zero-pixel side)."""
    service = DetectorService(detector_config(), ["cam"], client=redis_client, runner=runner)
    with running(service):
        assert wait_for(owns(redis_client, "cam"), 10)
        push(redis_client, jpeg_frame("cam", 0, 16384, 1))
        push(redis_client, jpeg_frame("cam", 1, 320, 240))
        assert wait_for(lambda: {d.seq for d in detections(redis_client)} >= {1}, 20)
        assert service.stopping is False


class FixedBoxesRunner(DetectorRunner):
    """The tiny model's runner, reporting the same two boxes of the overfit localizer's class in
    every frame: one on :func:`tiled_frame`'s rectangle, one on its noise."""

    BOXES = (RECTANGLE, background_box(0, 3, 0.15))

    def __init__(self, weights: Path) -> None:
        super().__init__(weights)
        self.class_names = ("rect",)

    def detect(self, batch: list[DecodedFrame]) -> tuple[list[list[Detection]], float]:
        return [[Detection("rect", 0, 0.9, box) for box in self.BOXES] for _ in batch], 0.001


def test_the_verifier_scores_each_track_once_per_every_s_on_the_frames_pixels(
    redis_client: redis.Redis, tiny_checkpoint: Path, localizer_checkpoint: Path
) -> None:
    config = detector_config(verifier=VerifierConfig(weights=str(localizer_checkpoint), every_s=60))
    service = DetectorService(config, ["cam"], client=redis_client, runner=FixedBoxesRunner(tiny_checkpoint))
    with running(service):
        assert wait_for(owns(redis_client, "cam"), 10)
        for seq in range(3):
            push(redis_client, tiled_frame("cam", seq))
            assert wait_for(lambda n=seq: len(detections(redis_client)) == n + 1, 10)
    verifications = service.metrics.registry.get_sample_value(
        "vigil_detector_verifications_total", {"camera": "cam"}
    )
    assert verifications == 2, "two tracks, each verified once in the 60 s"
    for message in detections(redis_client):
        on_rectangle, on_noise = message.objects
        assert on_rectangle.track_id is not None and on_noise.track_id is not None
        assert on_rectangle.verify_score is not None and on_rectangle.verify_score > 0.9
        assert on_noise.verify_score is not None and on_noise.verify_score < 0.1
        assert "verify" in message.timings_ms
