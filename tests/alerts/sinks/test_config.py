"""A bad sink configuration stops ``vigil sinks`` at start, naming the field; filters and the rate
limit (pure)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from alerts.sinks.filters import EventFilter, TokenBucket
from shared.config import WebhookSinkConfig
from tests.alerts.sinks.conftest import event

HOOK = {"name": "hook", "type": "webhook", "url": "https://example.com/hook", "secret": "s3cret-value"}


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({**HOOK, "type": "smtp"}, "sinks.targets[0]: Input tag 'smtp'"),
        ({**HOOK, "url": "ftp://example.com/x"}, "sinks.targets[0].webhook.url"),
        ({**HOOK, "url": "https://"}, "sinks.targets[0].webhook.url"),
        ({**HOOK, "url": "http://example.com/hook"}, "url: http:// sends events unencrypted"),
        ({k: v for k, v in HOOK.items() if k != "secret"}, "secret (or secret_file) is required"),
        ({**HOOK, "secret": ""}, "secret is empty"),
        ({"name": "ha", "type": "mqtt", "host": "broker", "password": "pw-123"}, "password needs username"),
        ({**HOOK, "rules": ["nope"]}, "sinks.targets[0].rules: no alert rule 'nope'"),
        ({**HOOK, "name": "bad name"}, "sinks.targets[0].webhook.name"),
    ],
)
def test_bad_config_is_refused_at_start_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: dict, expected: str
) -> None:
    from vigil.cli import main

    config = tmp_path / "vigil.yaml"
    config.write_text(yaml.safe_dump({"sinks": {"targets": [target]}}))
    assert main(["sinks", "-c", str(config)]) == 2
    error = capsys.readouterr().err
    assert expected in error, error
    assert "s3cret-value" not in error and "pw-123" not in error


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({k: v for k, v in HOOK.items() if k != "secret"} | {"secret_file": "{tmp}/missing"},
         "sinks.targets[hook].secret_file: cannot read"),
        ({**HOOK, "ca_file": "{tmp}/missing-ca.pem"}, "sinks.targets[hook].ca_file: does not load"),
        ({"name": "ha", "type": "mqtt", "host": "broker", "tls": {"ca_file": "{tmp}/missing-ca.pem"}},
         "sinks.targets[ha].tls: the certificate files do not load"),
    ],
)  # fmt: skip
def test_a_file_that_will_not_load_is_refused_at_start_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: dict, expected: str
) -> None:
    from vigil.cli import main

    config = tmp_path / "vigil.yaml"
    text = yaml.safe_dump({"redis": {"url": "redis://127.0.0.1:1/0"}, "sinks": {"targets": [target]}})
    config.write_text(text.replace("{tmp}", str(tmp_path)))
    assert main(["sinks", "-c", str(config)]) == 2
    assert expected in capsys.readouterr().err


def test_filters_by_camera_label_rule_kind_and_least_severity() -> None:
    accepts = EventFilter.from_config(
        WebhookSinkConfig(
            **HOOK, cameras=("cam1",), labels=("pistol",), rules=("gun",), min_severity="warning"
        )
    ).accepts
    assert accepts(event(1))
    assert not accepts(event(1, camera="cam2")) and not accepts(event(1, rule="knife"))
    assert not accepts(replace(event(1), severity="info"))
    assert not EventFilter.from_config(WebhookSinkConfig(**HOOK, kinds=("started",))).accepts(
        event(1, kind="ended")
    )


def test_the_rate_limit_delays_beyond_the_burst() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=3, now=0.0)
    for _ in range(3):
        assert bucket.wait_s(0.0) == 0.0
        bucket.take(0.0)
    assert bucket.wait_s(0.0) == pytest.approx(0.5)
    assert bucket.wait_s(0.5) == 0.0
