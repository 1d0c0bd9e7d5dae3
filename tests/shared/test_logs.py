import json
import logging

import pytest

from shared.logs import JsonFormatter, RedactingFormatter, redact, register_url_secrets


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
