"""Redis dies (kill -9) and comes back empty on the same port while the pipeline runs: every service
rides it out and resumes on its own. Only the history from before is lost; what happens after the
restart is delivered once, each ``started`` with its ``ended``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from shared.redis import EmbeddedRedis
from tests.chaos.pipeline import EventCollector, Pipeline, assert_delivered_once, drain, started_twice

pytestmark = pytest.mark.slow
OUTAGE_S = 3.0


@pytest.mark.timeout(180)
def test_redis_restarts_empty_and_every_service_resumes(private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path, private_redis.url)
    try:
        with (
            EventCollector(pipeline.endpoint, name="subscriber-1") as first,
            EventCollector(pipeline.endpoint, name="subscriber-2") as second,
        ):
            pipeline.start_all()
            pipeline.wait(lambda: len(first.started_after(0)) >= 3, 60, "three alerts before the fault")
            pids = pipeline.pids()

            private_redis.stop(kill=True)
            time.sleep(OUTAGE_S)
            private_redis.start()
            restarted_ns = time.time_ns()
            assert not pipeline.history(), "the new server starts empty"

            pipeline.wait(lambda: pipeline.newest_frame_ms() > 0, 30, "ingest publishes again")
            pipeline.wait(lambda: pipeline.detections_after(restarted_ns), 30, "the detector publishes again")
            pipeline.wait(
                lambda: first.started_after(restarted_ns) and second.started_after(restarted_ns),
                60, "a new alert at both subscribers after the restart",
            )  # fmt: skip
            assert pipeline.pids() == pids, "no service restarted"
            drain(pipeline, [first, second])
        history = assert_delivered_once(pipeline, [first, second])
        assert all(e.ts_ns > restarted_ns - OUTAGE_S * 1e9 - 5e9 for e in history), "only the new history"
        assert not (problem := started_twice([first, second])), problem
    finally:
        codes = pipeline.close()
    assert set(codes.values()) <= {0}, f"every service obeys SIGTERM: {codes}\n{pipeline.logs()}"
