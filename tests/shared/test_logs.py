import json
import logging
from collections.abc import Iterator

import pytest

from shared.logs import (
    JsonFormatter,
    RateLimitedLog,
    RedactingFormatter,
    log_limited,
    redact,
    register_url_secrets,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/s", "rtsp://admin:***@10.0.0.5:554/s"),
        ("open rediss://:pa@ss@redis:6380/0 failed", "open rediss://:***@redis:6380/0 failed"),
        ("http://token@cam/mjpeg", "http://***@cam/mjpeg"),
        ("http://cam/video?user=a&password=x1&fps=5", "http://cam/video?user=a&password=***&fps=5"),
        ("no secrets in rtsp://cam/stream", "no secrets in rtsp://cam/stream"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_registered_secret_is_masked_anywhere() -> None:
    register_url_secrets("rtsp://viewer:Tr0ub4dor%26x@cam/s")
    assert redact("auth failed with Tr0ub4dor&x") == "auth failed with ***"
    assert redact("raw Tr0ub4dor%26x") == "raw ***"


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("cannot open rtsp://u:pw123@cam/x")
        except RuntimeError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("t", logging.WARNING, __file__, 1, message, args, exc_info)


def test_plain_formatter_redacts_args_and_tracebacks() -> None:
    line = RedactingFormatter("%(message)s").format(
        record("camera %s url %s", "lobby", "rtsp://u:pw123@cam/x", exc=True)
    )
    assert "pw123" not in line
    assert "camera lobby url rtsp://u:***@cam/x" in line
    assert "RuntimeError" in line


def test_json_formatter() -> None:
    line = JsonFormatter().format(record("url %s", "rtsp://u:pw123@cam/x", exc=True))
    entry = json.loads(line)
    assert entry["msg"] == "url rtsp://u:***@cam/x"
    assert entry["level"] == "WARNING"
    assert "pw123" not in line


class Lines(logging.Handler):
    """A real handler on a real logger, formatting what it receives the way a service's would."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self.setFormatter(RedactingFormatter("%(levelname)s %(name)s %(module)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def lines(request: pytest.FixtureRequest) -> Iterator[Lines]:
    logger = logging.getLogger(f"vigil.test.{request.node.name}")
    handler = Lines(logger)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield handler
    logger.removeHandler(handler)


def test_rate_limited_lines_say_how_many_were_suppressed(lines: Lines) -> None:
    logger = lines.logger
    now = [100.0]
    limited = RateLimitedLog(clock=lambda: now[0])
    for seq in range(500):  # a flood of malformed entries from one camera within one second
        now[0] = 100.0 + seq / 500
        limited(logger, "gate", 10.0, "camera %s: malformed frame entry skipped (seq %d)", "gate", seq)
    limited(logger, "yard", 10.0, "camera %s: malformed frame entry skipped (seq %d)", "yard", 0)
    now[0] = 109.9
    assert not limited(logger, "gate", 10.0, "camera %s: still bad", "gate")
    now[0] = 110.0
    assert limited(logger, "gate", 10.0, "camera %s: still bad", "gate")
    assert limited(logger, "gate", 10.0, "camera %s: bad again", "gate", level=logging.ERROR) is False
    now[0] = 125.0
    assert limited(logger, "gate", 10.0, "camera %s: quiet since", "gate")
    assert lines.lines == [
        f"WARNING {logger.name} test_logs: camera gate: malformed frame entry skipped (seq 0)",
        f"WARNING {logger.name} test_logs: camera yard: malformed frame entry skipped (seq 0)",
        f"WARNING {logger.name} test_logs: camera gate: still bad (500 similar lines suppressed)",
        f"WARNING {logger.name} test_logs: camera gate: quiet since (1 similar lines suppressed)",
    ]  # %(module)s is the caller's: the limiter is invisible in the record


def test_the_process_limiter_limits_per_logger_and_key(lines: Lines) -> None:
    logger = lines.logger
    for _ in range(50):
        log_limited(logger, "malformed:missing_field", 60.0, "entry skipped: %s", "missing_field: seq")
        log_limited(logger, "malformed:bad_field", 60.0, "entry skipped: %s", "bad_field: camera id")
    assert lines.lines == [
        f"WARNING {logger.name} test_logs: entry skipped: missing_field: seq",
        f"WARNING {logger.name} test_logs: entry skipped: bad_field: camera id",
    ]


def test_the_limiter_forgets_expired_keys_beyond_its_bound(lines: Lines) -> None:
    logger = lines.logger
    now = [0.0]
    limited = RateLimitedLog(clock=lambda: now[0])
    for key in range(RateLimitedLog.MAX_KEYS + 10):
        now[0] = key * 0.001
        limited(logger, str(key), 1.0, "key %d", key)
    assert len(lines.lines) == RateLimitedLog.MAX_KEYS + 10
    assert len(limited._windows) <= RateLimitedLog.MAX_KEYS
