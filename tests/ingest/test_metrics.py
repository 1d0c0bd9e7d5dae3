"""Ingest's metrics pass Prometheus's own linter and keep to Vigil's naming rules."""

from __future__ import annotations

import redis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shared.config import CameraConfig
from tests.deploy.observability import promtool_check_metrics
from tests.ingest.conftest import VTEST, run_burst


def test_metrics_pass_promtool_and_naming_rules(redis_client: redis.Redis) -> None:
    camera = CameraConfig(id="vtest", url=str(VTEST), fps=5, max_side=160, realtime=False)
    service = run_burst(redis_client, [camera], max_frames=5)
    text = generate_latest(service.metrics.registry).decode()
    result = promtool_check_metrics(text)
    assert result.returncode == 0, result.stdout + result.stderr
    families = list(text_string_to_metric_families(text))
    assert families and all(family.name.startswith("vigil_ingest_") for family in families)
    labels = {key for family in families for sample in family.samples for key in sample.labels}
    assert labels <= {"camera", "reason", "le"}, "bounded label sets only"
    dropped = [s for f in families for s in f.samples if s.name == "vigil_ingest_frames_dropped_total"]
    assert {s.labels["reason"] for s in dropped} == {"redis_unavailable", "encode_failed", "retrieve_failed"}
