"""Building alert events: the frame size a box refers to travels with it."""

from __future__ import annotations

import pytest

from alerts.events import alert_event
from shared.config import AlertRuleConfig
from shared.schemas import AlertEvent, Detection


def test_an_event_carries_the_size_of_the_frame_its_box_is_in() -> None:
    rule = AlertRuleConfig(name="gun", labels=("pistol",))
    seen = Detection(label="pistol", class_id=0, score=0.8, box=(320.0, 180.0, 640.0, 720.0), track_id=4)
    event = alert_event("started", rule=rule, camera="gate", detection=seen, frame_size=(1280, 720),
                        first_seq=9, first_seen_ns=1, ts_ns=2, seq=9)  # fmt: skip
    assert (event.frame_width, event.frame_height) == (1280, 720)
    assert event.box_norm == pytest.approx((0.25, 0.25, 0.5, 1.0))
    sizes = [event.frame_width, event.frame_height] * 2
    pixels = [v * size for v, size in zip(event.box_norm, sizes, strict=True)]
    assert pixels == pytest.approx(list(seen.box)), "box_norm times the frame size is the box"
    assert AlertEvent.from_json(event.to_json()) == event
