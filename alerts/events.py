"""Building :class:`AlertEvent`s: deterministic ids, normalised boxes and the frame size they refer to.

An alert's id depends only on what the detections said (camera, track, rule, the frame it fired
on, and the event kind), never on a clock or a counter, so replaying the same detections after a
crash gives the same ids and subscribers can drop duplicates by id. A ``started`` event and its
``ended`` event share camera, track, rule and first frame, so they pair up.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from shared.config import AlertRuleConfig
from shared.schemas import AlertEvent, Box, Detection

EventKind = Literal["started", "ended"]
EVENT_ID_HEX = 20


def event_id(camera: str, track_id: int | None, rule: str, first_seq: int, kind: EventKind) -> str:
    """The first 20 hex digits of the SHA-1 of a canonical JSON of the arguments."""
    canonical = json.dumps(["vigil-alert", 1, camera, track_id, rule, first_seq, kind], separators=(",", ":"))
    return hashlib.sha1(canonical.encode("utf-8"), usedforsecurity=False).hexdigest()[:EVENT_ID_HEX]


def normalise_box(box: Box, width: int, height: int) -> Box:
    """``box`` (xyxy pixels) as fractions of the frame size, each clipped to 0-1."""

    def clip(value: float) -> float:
        return min(1.0, max(0.0, value))

    x1, y1, x2, y2 = box
    return (clip(x1 / width), clip(y1 / height), clip(x2 / width), clip(y2 / height))


def alert_event(
    kind: EventKind,
    *,
    rule: AlertRuleConfig,
    camera: str,
    detection: Detection,
    frame_size: tuple[int, int],
    first_seq: int,
    first_seen_ns: int,
    ts_ns: int,
    seq: int,
) -> AlertEvent:
    """An event of ``rule`` about ``detection`` (a tracked object seen in a ``frame_size`` = (width,
    height) frame). ``first_seq`` is the frame the alert fired on, which names the alert; ``ts_ns``
    and ``seq`` say when this event happened."""
    width, height = frame_size
    return AlertEvent(
        event_id=event_id(camera, detection.track_id, rule.name, first_seq, kind),
        kind=kind,
        rule=rule.name,
        severity=rule.severity,
        camera=camera,
        label=detection.label,
        score=detection.score,
        box=detection.box,
        box_norm=normalise_box(detection.box, width, height),
        frame_width=width,
        frame_height=height,
        track_id=detection.track_id,
        first_seen_ns=first_seen_ns,
        ts_ns=ts_ns,
        seq=seq,
    )
