"""What the commands print: durations typed in, alert lines, the cameras table."""

from __future__ import annotations

import pytest

from shared.errors import UsageError
from shared.registry import CameraStatus
from shared.schemas import AlertEvent
from vigil.console import STALE_STATUS_S, cameras_table, describe, parse_duration

NOW_NS = 1_800_000_000 * 10**9


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1.5m", 90)]
)
def test_durations_in_every_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "ten minutes", "5y"])
def test_a_bad_duration_ends_the_command_with_an_example(text: str) -> None:
    with pytest.raises(UsageError, match=r"not a duration.*e\.g\. 90s"):
        parse_duration(text)


def test_an_alert_line_names_what_an_operator_acts_on() -> None:
    event = AlertEvent(
        event_id="abc123", kind="started", rule="gun", severity="critical", camera="gate", label="pistol",
        score=0.874, box=(10.4, 20.0, 110.6, 220.0), box_norm=(0.01, 0.02, 0.1, 0.2),
        frame_width=1280, frame_height=720, track_id=7,
        first_seen_ns=NOW_NS, ts_ns=NOW_NS, seq=42, snapshot="vigil:snapshot:abc123",
    )  # fmt: skip
    line = describe(event)
    for part in ("STARTED", "critical", "gun", "camera=gate", "pistol", "score=0.87", "track=7",
                 "box=[10, 20, 111, 220]", "snapshot=vigil:snapshot:abc123", "id=abc123"):  # fmt: skip
        assert part in line


def test_the_cameras_table_marks_stale_entries_and_hints_when_empty() -> None:
    fresh = CameraStatus(
        camera="gate", state="streaming", owner="host:1", updated_ns=NOW_NS, last_frame_ns=NOW_NS - 2 * 10**9,
        fps=5.0, width=640, height=360, frames_published=99,
    )  # fmt: skip
    old = CameraStatus(camera="yard", state="streaming", owner="host:2",
                       updated_ns=NOW_NS - (STALE_STATUS_S + 1) * 10**9)  # fmt: skip
    header, gate, yard = cameras_table([fresh, old], now_ns=NOW_NS).splitlines()
    assert header.split()[:3] == ["CAMERA", "STATE", "OWNER"]
    assert gate.split()[:3] == ["gate", "streaming", "host:1"] and "2.0s ago" in gate and "640x360" in gate
    assert yard.split()[:2] == ["yard", "streaming?"] and "never" in yard
    assert "is `vigil ingest` running" in cameras_table([], now_ns=NOW_NS)
