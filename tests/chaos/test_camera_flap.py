"""An RTSP camera goes away and comes back on the same address while `vigil ingest` runs: the same
ingest process reconnects, the registry says what happened, and frames flow again with their
sequence numbers going on (no model needed)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shared import keys
from shared.redis import EmbeddedRedis
from shared.registry import CameraStatus, read_statuses
from shared.schemas import Frame
from tests.chaos.pipeline import SAMPLE, Pipeline
from tests.support.media import RtspServer

pytestmark = pytest.mark.slow
CAMERA = "door"


def status(pipeline: Pipeline) -> CameraStatus | None:
    return next((s for s in read_statuses(pipeline.client) if s.camera == CAMERA), None)


def frames(pipeline: Pipeline) -> list[Frame]:
    return [Frame.decode(fields) for _id, fields in pipeline.client.xrange(keys.frames_stream(CAMERA))]


def frames_after(pipeline: Pipeline, ts_ns: int) -> int:
    return sum(frame.ts_ns > ts_ns for frame in frames(pipeline))


@pytest.mark.timeout(120)
def test_rtsp_camera_flaps_and_the_same_ingest_reconnects(
    private_redis: EmbeddedRedis, tmp_path: Path
) -> None:
    with RtspServer(SAMPLE) as server:
        camera = {"id": CAMERA, "url": server.url, "fps": 5, "max_side": 320}
        pipeline = Pipeline(tmp_path, private_redis.url, cameras=[camera])
        try:
            pipeline.start("ingest")
            pipeline.wait(lambda: frames_after(pipeline, 0) >= 5, 30, "frames from the camera")
            pid = pipeline.pids()["ingest"]
            for outage in (server.stop, server.kill):  # SIGTERM (clients dropped), then SIGKILL
                outage()
                pipeline.wait(lambda: (s := status(pipeline)) and s.state in ("backoff", "connecting"), 15,
                              "the registry shows the camera down")  # fmt: skip
                down = status(pipeline)
                assert down is not None and f"camera {CAMERA}" in down.last_error, down
                time.sleep(1.0)
                server.start()
                back_ns = time.time_ns()
                pipeline.wait(lambda: (s := status(pipeline)) and s.state == "streaming", 20,
                              "the camera streams again")  # fmt: skip
                pipeline.wait(lambda t=back_ns: frames_after(pipeline, t) >= 5, 15, "frames flow again")
                assert pipeline.pids() == {"ingest": pid}, "the same ingest process"
            final = status(pipeline)
            assert final is not None and final.reconnects >= 2, final
        finally:
            codes = pipeline.close()
    assert codes == {"ingest": 0}, pipeline.logs()
    seqs = [frame.seq for frame in frames(pipeline)]
    assert seqs == sorted(set(seqs)), "sequence numbers go on across reconnects, none twice"
