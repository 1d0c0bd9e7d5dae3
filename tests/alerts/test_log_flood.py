"""A flood of malformed entries is counted in full and logged at a bounded rate."""

from __future__ import annotations

import logging

import pytest
import redis

from alerts.service import AlertService
from shared import keys
from tests.alerts.conftest import alerts_config, cameras, endpoint, message
from tests.support.services import running, wait_for


def test_a_flood_of_malformed_detections_logs_a_line_not_a_line_each(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    bind, _ = endpoint()
    service = AlertService(alerts_config(bind), cameras("cam"), client=redis_client)
    malformed = lambda: service.metrics.registry.get_sample_value(  # noqa: E731
        "vigil_alerts_malformed_total", {"reason": "bad_field"}
    )
    with caplog.at_level(logging.WARNING, logger="alerts.service"), running(service):
        assert wait_for(lambda: service.ready, 10)
        for seq in range(300):  # each with a camera id that ends in a newline
            entry = message("cam", seq, (1, 0.9)).encode() | {"camera": "cam\n"}
            redis_client.xadd(keys.detections_stream("cam"), entry)
        assert wait_for(lambda: malformed() == 300, 10), malformed()
    lines = [r for r in caplog.records if r.name == "alerts.service" and "skipped" in r.getMessage()]
    assert len(lines) <= 1, [r.getMessage() for r in lines]
