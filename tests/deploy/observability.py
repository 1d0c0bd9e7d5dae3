"""What the observability tests (and a later end-to-end test against a real Prometheus) share:
the shipped files, the metric names the services define, the metric names a PromQL expression
uses, the dashboard's queries as plain PromQL, and a copy of the Prometheus config that scrapes
processes on this machine instead of the docker-compose services."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from alerts.metrics import AlertsMetrics
from detector.metrics import DetectorMetrics
from ingest.metrics import IngestMetrics

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TESTS = PROMETHEUS_DIR / "rules.test.yml"
GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "vigil.json"
DATASOURCE_UID = "prometheus"

PROMETHEUS_OWN_SERIES = frozenset({"up"})
"""Series Prometheus writes itself for every target, which rules may use."""

_SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool comes with Debian's prometheus package (tools/system-deps.sh)"
    return path


def run_promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


def promtool_check_metrics(exposition: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` on one endpoint's text (its linter: naming, units, help)."""
    return subprocess.run(
        [promtool(), "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60
    )


def _registries() -> list[CollectorRegistry]:
    return [IngestMetrics().registry, DetectorMetrics().registry, AlertsMetrics().registry]


def service_metric_names() -> frozenset[str]:
    """Every sample name the three services can expose: read from their registries' collect(),
    with the names of labelled metrics that have no series yet derived from the family type."""
    names: set[str] = set()
    for registry in _registries():
        for family in registry.collect():
            names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
            names.update(sample.name for sample in family.samples)
    return frozenset(names)


def metric_names_with_label(label: str) -> frozenset[str]:
    """Sample names of the services' metrics that carry ``label`` (e.g. camera)."""
    names: set[str] = set()
    for metrics in (IngestMetrics(), DetectorMetrics(), AlertsMetrics()):
        for metric in vars(metrics).values():
            if isinstance(metric, MetricWrapperBase) and label in metric._labelnames:
                for family in metric.describe():
                    names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
    return frozenset(names)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' r"|'(?:[^'\\]|\\.)*'" r"|`[^`]*`")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset({
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
    "group_right", "inf", "nan", "atan2",
})  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (``rate(x_total{a="b"}[1m])`` -> ``{"x_total"}``):
    strings, label matchers, ranges and label lists are removed; what is left that is neither a
    function call, a keyword nor a number is a metric name. Also catches ``{__name__="x"}``."""
    names = set(re.findall(r'__name__\s*=\s*"([^"]*)"', expr))
    stripped = _STRING.sub('""', expr)
    stripped = _MATCHERS.sub(" ", stripped)
    stripped = _RANGE.sub(" ", stripped)
    stripped = _LABEL_LIST.sub(" ", stripped)
    names.update(m for m in _IDENTIFIER.findall(stripped) if m.lower() not in _KEYWORDS)
    return names


def load_rules() -> dict[str, Any]:
    return yaml.safe_load(RULES.read_text())


def rules() -> Iterator[dict[str, Any]]:
    for group in load_rules()["groups"]:
        yield from group["rules"]


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows included (rows themselves excluded)."""
    for panel in (dashboard or load_dashboard())["panels"]:
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_queries(camera: str = ".*") -> list[tuple[str, str, str]]:
    """(panel title, refId, PromQL) of every panel target, with ``$camera`` set to ``camera`` (a
    regex: ``.*`` is Grafana's "All"), ready for Prometheus's /api/v1/query."""
    return [
        (panel["title"], target["refId"], target["expr"].replace("$camera", camera))
        for panel in panels()
        for target in panel.get("targets", [])
    ]


def local_prometheus_config(
    directory: Path, targets: Mapping[str, str], *, scrape_interval: str | None = None, only: bool = False
) -> Path:
    """A copy of prometheus.yml (and rules.yml) in ``directory`` whose jobs scrape ``targets``
    (job name -> "host:port", e.g. ``{"vigil-ingest": "127.0.0.1:9101"}``); other jobs unchanged,
    or left out with ``only``.
    ``scrape_interval`` (e.g. "1s") replaces the global scrape and rule evaluation intervals and
    bounds the scrape timeout."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    if scrape_interval:
        for key in ("scrape_interval", "evaluation_interval", "scrape_timeout"):
            config["global"][key] = scrape_interval
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    unknown = set(targets) - jobs
    if unknown:
        raise ValueError(f"no such scrape jobs: {sorted(unknown)} (have {sorted(jobs)})")
    if only:
        config["scrape_configs"] = [job for job in config["scrape_configs"] if job["job_name"] in targets]
    for job in config["scrape_configs"]:
        if job["job_name"] in targets:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    for rule_file in config.get("rule_files", []):
        shutil.copy(PROMETHEUS_DIR / rule_file, directory / rule_file)
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
