"""The Sink protocol, and :func:`open_sink`: config → a sink, its secret read and registered for
redaction (so no log line or error message can carry it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from alerts.sinks.mqtt import MqttSink, SnapshotLoader
from alerts.sinks.webhook import WebhookSink
from shared.config import MqttSinkConfig, SinkConfig
from shared.errors import ConfigError
from shared.logs import register_secret
from shared.schemas import AlertEvent


class Sink(Protocol):
    """Delivers one event at a time. ``deliver`` returns once the receiver has it, or raises
    :class:`~shared.errors.SinkUnavailable` (retry) or :class:`~shared.errors.SinkRejected`
    (dead-letter)."""

    name: str

    def open(self) -> None: ...
    def deliver(self, event: AlertEvent) -> None: ...
    def close(self, *, farewell: bool = True) -> None:
        """``farewell``: this replica stops for good; False: the sink moved to another replica."""
        ...


def read_secret(value: SecretStr | None, file: str | None, *, field: str) -> str | None:
    """The secret given inline or in ``file`` (one line, surrounding white space dropped)."""
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise ConfigError(f"{field}_file: cannot read {file}: {type(error).__name__}") from None
        if not text:
            raise ConfigError(f"{field}_file: {file} is empty")
    else:
        text = value.get_secret_value() if value is not None else None
    if text:
        register_secret(text)
    return text


def open_sink(
    config: SinkConfig,
    *,
    sensors: Sequence[tuple[str, str]] = (),
    snapshots: SnapshotLoader = lambda _event: None,
) -> Sink:
    """A sink for ``config`` (not yet opened). ``sensors`` and ``snapshots`` serve MQTT: the
    (camera, rule) pairs announced to Home Assistant, and the JPEG of an event."""
    where = f"sinks.targets[{config.name}]"
    if isinstance(config, MqttSinkConfig):
        password = read_secret(config.password, config.password_file, field=f"{where}.password")
        try:
            return MqttSink(config.name, config, password=password, sensors=sensors, snapshots=snapshots)
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
            raise ConfigError(
                f"{where}.tls: the certificate files do not load ({type(error).__name__})"
            ) from None
    secret = read_secret(config.secret, config.secret_file, field=f"{where}.secret")
    assert secret is not None  # the config requires one
    try:
        return WebhookSink(
            config.name,
            url=config.url,
            secret=secret.encode(),
            timeout_s=config.timeout_s,
            ca_file=config.ca_file,
        )
    except OSError as error:
        raise ConfigError(f"{where}.ca_file: does not load ({type(error).__name__})") from None
