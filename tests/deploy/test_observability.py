"""The shipped observability files, checked with Prometheus's own tools: the scrape config and the
alerting rules pass ``promtool``, the rules' unit tests pass, and the Grafana dashboard's queries
parse as PromQL, use only metrics the services define and cover what the dashboard must show."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from shared.config import AlertsConfig, DetectorConfig, IngestConfig, RecordConfig, SinksConfig, WebConfig
from tests.deploy.observability import (
    DASHBOARD,
    DATASOURCE_UID,
    GRAFANA_DIR,
    PROMETHEUS_CONFIG,
    PROMETHEUS_OWN_SERIES,
    RULES,
    RULES_TESTS,
    dashboard_queries,
    load_dashboard,
    local_prometheus_config,
    metric_names_with_label,
    panels,
    promql_metric_names,
    rules,
    run_promtool,
    service_metric_names,
)

JOBS = {
    "vigil-ingest": f"ingest:{IngestConfig().metrics_port}",
    "vigil-detector": f"detector:{DetectorConfig().metrics_port}",
    "vigil-alerts": f"alerts:{AlertsConfig().metrics_port}",
    "vigil-sinks": f"sinks:{SinksConfig().metrics_port}",
    "vigil-record": f"record:{RecordConfig().metrics_port}",
    "vigil-web": f"web:{WebConfig().metrics_port}",
}
ALERTS = {
    "VigilServiceDown", "VigilCameraDown", "VigilIngestDropRateHigh", "VigilDetectorDropRateHigh",
    "VigilDetectorLatencyHigh", "VigilAlertLatencyHigh",
}  # fmt: skip
PER_CAMERA_ALERTS = {"VigilCameraDown", "VigilIngestDropRateHigh", "VigilDetectorDropRateHigh"}


def _ok(result) -> None:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}{result.stderr}"


# -- Prometheus ------------------------------------------------------------------------------


def test_prometheus_config_passes_promtool() -> None:
    _ok(run_promtool("check", "config", PROMETHEUS_CONFIG))  # also checks the rule files it names


def test_prometheus_config_scrapes_every_service() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["global"]["scrape_interval"] == "5s"
    assert config["rule_files"] == ["rules.yml"]
    scraped = {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in config["scrape_configs"]
    }
    assert scraped == {job: [target] for job, target in JOBS.items()}
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in config["scrape_configs"])


def test_a_copy_of_the_config_can_scrape_local_processes(tmp_path: Path) -> None:
    local = {"vigil-ingest": "127.0.0.1:19101", "vigil-detector": "127.0.0.1:19102"}
    path = local_prometheus_config(tmp_path, local)
    _ok(run_promtool("check", "config", path))
    config = yaml.safe_load(path.read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {**{job: [t] for job, t in JOBS.items()}, **{job: [t] for job, t in local.items()}}
    with pytest.raises(ValueError, match="no such scrape jobs"):
        local_prometheus_config(tmp_path, {"vigil-ingset": "127.0.0.1:1"})


def test_rules_pass_promtool_check() -> None:
    _ok(run_promtool("check", "rules", RULES))


def test_rules_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", RULES_TESTS.name, cwd=RULES_TESTS.parent)
    _ok(result)
    assert "SUCCESS" in result.stdout


def test_rules_unit_tests_cover_every_alert_firing_and_quiet() -> None:
    tests = yaml.safe_load(RULES_TESTS.read_text())["tests"]
    checks = [check for test in tests for check in test.get("alert_rule_test", [])]
    fired = {check["alertname"] for check in checks if check["exp_alerts"]}
    quiet = {check["alertname"] for check in checks if not check["exp_alerts"]}
    assert fired == ALERTS
    assert quiet == ALERTS


def test_rules_are_the_issues_alerts_with_severity_and_annotations() -> None:
    alerts = {rule["alert"]: rule for rule in rules() if "alert" in rule}
    assert set(alerts) == ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        assert "for" in rule, f"{name}: fires on a single evaluation"
    for name in PER_CAMERA_ALERTS:
        assert "by (camera)" in alerts[name]["expr"], name
        assert "{{ $labels.camera }}" in alerts[name]["annotations"]["summary"], name
    assert 'reason!="superseded"' in alerts["VigilDetectorDropRateHigh"]["expr"]


def test_rule_exprs_reference_only_existing_metrics() -> None:
    known = service_metric_names() | PROMETHEUS_OWN_SERIES
    known |= {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        used = promql_metric_names(rule["expr"])
        assert used, f"{rule.get('alert') or rule.get('record')}: no metric found in {rule['expr']!r}"
        assert used <= known, f"{rule.get('alert') or rule.get('record')}: unknown {sorted(used - known)}"


# -- the metric-name extraction the checks above and below rely on -----------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('rate(vigil_x_total{camera=~"$camera", reason!="by (x)"}[5m])', {"vigil_x_total"}),
        ("histogram_quantile(0.99, sum by (le, instance) (rate(a_bucket[5m:1m] offset 1h)))", {"a_bucket"}),
        ("sum(rate(a_sum[1m])) by (job) / on (job) group_left (camera) b == bool 1e3", {"a_sum", "b"}),
        ("max by (camera) (up) == 0 and absent(c) or -inf < NaN unless d", {"up", "c", "d"}),
        ('{__name__="e_total", job="x"}', {"e_total"}),
        ("time() - f:recorded", {"f:recorded"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert promql_metric_names(expr) == names


def test_service_metric_names_are_the_exposed_sample_names() -> None:
    names = service_metric_names()
    assert {"vigil_ingest_frames_published_total", "vigil_ingest_camera_up",
            "vigil_detector_inference_seconds_bucket", "vigil_alerts_published_total"} <= names  # fmt: skip
    assert "vigil_ingest_frames_published" not in names  # counters are exposed with _total
    assert "vigil_detector_inference_seconds" not in names
    assert "vigil_alerts_published_total" not in metric_names_with_label("camera")
    assert "vigil_detector_detections_total" in metric_names_with_label("camera")


# -- Grafana ---------------------------------------------------------------------------------


def test_grafana_datasource_is_provisioned_with_the_panels_uid() -> None:
    path = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
    provisioning = yaml.safe_load(path.read_text())
    (datasource,) = provisioning["datasources"]
    assert datasource["name"] == "Prometheus"
    assert datasource["type"] == "prometheus"
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["url"] == "http://prometheus:9090"


def test_grafana_dashboards_are_provisioned_from_files() -> None:
    path = GRAFANA_DIR / "provisioning" / "dashboards" / "vigil.yml"
    provisioning = yaml.safe_load(path.read_text())
    (provider,) = provisioning["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert DASHBOARD.parent.name == "dashboards"


def test_dashboard_is_valid_with_a_camera_variable() -> None:
    dashboard = load_dashboard()  # valid JSON
    assert dashboard["uid"] == "vigil"
    assert dashboard["title"] == "Vigil"
    assert dashboard["schemaVersion"] >= 36
    (camera,) = [v for v in dashboard["templating"]["list"] if v["name"] == "camera"]
    assert camera["type"] == "query"
    assert camera["datasource"]["uid"] == DATASOURCE_UID
    query = camera["query"]["query"] if isinstance(camera["query"], dict) else camera["query"]
    assert query == "label_values(vigil_ingest_frames_published_total, camera)"
    assert camera["includeAll"] and camera["allValue"] == ".*"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"


def test_every_panel_queries_prometheus_with_plain_exprs() -> None:
    for panel in panels():
        title = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, title
        targets = panel.get("targets", [])
        assert targets, f"{title}: no targets"
        for target in targets:
            assert target["datasource"]["uid"] == DATASOURCE_UID, title
            assert isinstance(target.get("expr"), str) and target["expr"].strip(), title
            # only $camera: no Grafana macros ($__rate_interval, $__interval, ...), so a test can
            # run every query against Prometheus as it stands
            assert set(re.findall(r"\$\{?(\w+)", target["expr"])) <= {"camera"}, (title, target["expr"])
        assert len({target["refId"] for target in targets}) == len(targets), title


def test_dashboard_exprs_parse_as_promql(tmp_path: Path) -> None:
    queries = dashboard_queries(".*")
    groups = {"groups": [{"name": "vigil-dashboard", "rules": [
        {"record": f"vigil_dashboard:check_{n}", "expr": expr} for n, (_, _, expr) in enumerate(queries)
    ]}]}  # fmt: skip
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(groups))
    result = run_promtool("check", "rules", path)
    _ok(result)
    assert f"{len(queries)} rules found" in result.stdout

    broken = {"groups": [{"name": "x", "rules": [{"record": "x:y", "expr": "sum by (camera (rate(a[1m]))"}]}]}
    path.write_text(yaml.safe_dump(broken))
    assert run_promtool("check", "rules", path).returncode != 0, "promtool does reject bad PromQL"


def test_dashboard_exprs_reference_only_existing_metrics() -> None:
    known = service_metric_names()
    for title, ref, expr in dashboard_queries():
        used = promql_metric_names(expr)
        assert used, f"{title}/{ref}: no metric in {expr!r}"
        assert used <= known, f"{title}/{ref}: unknown {sorted(used - known)}"


def test_per_camera_metrics_follow_the_camera_variable() -> None:
    per_camera = metric_names_with_label("camera")
    for panel in panels():
        for target in panel["targets"]:
            if promql_metric_names(target["expr"]) & per_camera:
                assert 'camera=~"$camera"' in target["expr"], (panel["title"], target["expr"])


def _exprs_using(metric: str) -> list[str]:
    return [expr for _, _, expr in dashboard_queries() if metric in promql_metric_names(expr)]


RATE = r"\brate\("
BY_CAMERA = r"by \(camera\)"
BY_REASON = r"by \([^)]*\breason\b"


@pytest.mark.parametrize(
    ("item", "metric", "patterns"),
    [
        ("per-camera ingest fps", "vigil_ingest_frames_published_total", (RATE, BY_CAMERA)),
        ("ingest drops by reason", "vigil_ingest_frames_dropped_total", (RATE, BY_REASON)),
        ("detector drops by reason", "vigil_detector_frames_dropped_total", (RATE, BY_REASON)),
        ("camera up", "vigil_ingest_camera_up", (BY_CAMERA,)),
        ("reconnects", "vigil_ingest_reconnects_total", (r"\b(rate|increase)\(", BY_CAMERA)),
        ("batch size", "vigil_detector_batch_size_bucket", (r"histogram_quantile\(",)),
        ("detections per second", "vigil_detector_detections_total", (RATE, r"by \([^)]*\blabel\b")),
        ("alerts per second", "vigil_alerts_published_total", (RATE, r"by \([^)]*\brule\b")),
    ],
)
def test_dashboard_covers(item: str, metric: str, patterns: tuple[str, ...]) -> None:
    """Some panel shows the item: a query of ``metric`` that matches every pattern."""
    exprs = _exprs_using(metric)
    assert exprs, f"no panel shows {item} ({metric})"
    assert any(all(re.search(p, expr) for p in patterns) for expr in exprs), (item, exprs)


@pytest.mark.parametrize(
    ("item", "metric"),
    [
        ("inference", "vigil_detector_inference_seconds_bucket"),
        ("queue lag", "vigil_detector_queue_lag_seconds_bucket"),
        ("end-to-end alert latency", "vigil_alerts_latency_seconds_bucket"),
    ],
)
def test_dashboard_shows_latency_quantiles(item: str, metric: str) -> None:
    exprs = _exprs_using(metric)
    assert exprs, f"no panel shows {item} ({metric})"
    quantiles = {float(q) for expr in exprs for q in re.findall(r"histogram_quantile\(\s*([\d.]+)", expr)}
    assert {0.5, 0.95, 0.99} <= quantiles, (item, sorted(quantiles))
