"""Vigil's error types. Errors are translated into these where they enter the program.

Messages name the camera, never its URL: URLs may carry credentials.
"""


class VigilError(Exception):
    """Base of every error Vigil raises on purpose."""


class ConfigError(VigilError):
    """The configuration file or a ``VIGIL_*`` variable is invalid; the message names the field."""


class SchemaError(VigilError):
    """A message (stream entry) does not follow its contract.

    ``reason`` is a short, bounded token suitable for a metric label.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class StoreUnavailable(VigilError):
    """Redis did not answer (down, restarting, network)."""


class SourceError(VigilError):
    """A video source failed. ``camera`` is the camera id (never the URL)."""

    def __init__(self, camera: str, message: str) -> None:
        super().__init__(f"camera {camera}: {message}")
        self.camera = camera


class SourceUnavailable(SourceError):
    """The source could not be opened (unreachable, refused, not a video, auth failed)."""


class SourceStalled(SourceError):
    """The source was open but no frame arrived in time."""


class SourceEnded(SourceError):
    """A finite source (a file without ``loop``) reached its end."""


class EndpointError(VigilError):
    """A network endpoint that cannot be bound or connected: a malformed address, a port in use."""


class UsageError(VigilError):
    """A command-line value that does not parse (the message says what was expected)."""


class DecodeError(VigilError):
    """A frame could not be decoded or encoded."""


class SinkError(VigilError):
    """A delivery to an alert sink failed. ``sink`` is the sink's name; messages never carry its
    URL, user name or secret."""

    def __init__(self, sink: str, message: str) -> None:
        super().__init__(f"sink {sink}: {message}")
        self.sink = sink
        self.reason = message


class SinkUnavailable(SinkError):
    """Worth retrying: a timeout, a refused connection, HTTP 5xx, 408 or 429, a missing MQTT ack.
    ``retry_after_s`` is the receiver's own hint (Retry-After), if it gave one."""

    def __init__(self, sink: str, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(sink, message)
        self.retry_after_s = retry_after_s


class SinkRejected(SinkError):
    """The receiver refused the event for good (HTTP 4xx other than 408 and 429): dead-letter it."""


class EventStoreError(VigilError):
    """The event store (SQLite or PostgreSQL) refused a request, or its schema is not the one this
    build reads (``vigil record --upgrade-db``). Messages never carry the database URL's password."""


class EventStoreUnavailable(EventStoreError):
    """The event store did not answer (the database is down, locked too long, unreachable)."""
