"""Messages as the services write them, for tests and benches: a camera's JPEG frame, the
detector's result on it (one tracked pistol), and the alert event a sink delivers."""

from __future__ import annotations

import time
from collections.abc import Mapping

from shared.schemas import AlertEvent, Box, Detection, Detections, Frame


def jpeg_frame(
    camera: str, seq: int, ts_ns: int, data: bytes, *, width: int, height: int, pts_ms: int | None = None
) -> Frame:
    """A JPEG frame of ``width``x``height``; ``pts_ms`` is the capture clock's by default."""
    return Frame(
        camera=camera,
        seq=seq,
        ts_ns=ts_ns,
        pts_ms=ts_ns // 1_000_000 if pts_ms is None else pts_ms,
        width=width,
        height=height,
        codec="jpeg",
        data=data,
    )


def pistol_detections(
    frame: Frame, box: Box, *, track_id: int, model: str, timings_ms: Mapping[str, float] | None = None
) -> Detections:
    """The detector's result on ``frame``: one pistol (score 0.9) at ``box``, on track ``track_id``."""
    return Detections(
        camera=frame.camera,
        seq=frame.seq,
        ts_ns=frame.ts_ns,
        width=frame.width,
        height=frame.height,
        model=model,
        objects=(Detection("pistol", 0, 0.9, box, track_id=track_id),),
        timings_ms=timings_ms or {},
    )


def pistol_event(
    n: int,
    *,
    event_id: str,
    first_seen_ns: int,
    ts_ns: int | None = None,
    camera: str = "cam1",
    kind: str = "started",
    rule: str = "gun",
    snapshot: str | None = None,
) -> AlertEvent:
    """The ``n``-th event of a pistol in a 640x480 frame (track ``n``, frame ``n``); ``ts_ns`` is now
    by default."""
    return AlertEvent(
        event_id=event_id,
        kind=kind,  # type: ignore[arg-type]
        rule=rule,
        severity="critical",
        camera=camera,
        label="pistol",
        score=0.9,
        box=(10.0, 20.0, 50.0, 80.0),
        box_norm=(0.1, 0.1, 0.2, 0.3),
        frame_width=640,
        frame_height=480,
        track_id=n,
        first_seen_ns=first_seen_ns,
        ts_ns=time.time_ns() if ts_ns is None else ts_ns,
        seq=n,
        snapshot=snapshot,
    )
