"""What the commands print for people: alert event lines, the cameras table, and durations typed in."""

from __future__ import annotations

import time
from collections.abc import Sequence

from shared.errors import UsageError
from shared.registry import CameraStatus
from shared.schemas import AlertEvent

DURATION_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
STALE_STATUS_S = 30
"""A registry entry older than this is shown with its state marked ``?`` (its writer may be gone)."""


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d`` → seconds; anything else raises :class:`UsageError`."""
    try:
        if text[-1] in DURATION_UNITS_S:
            return float(text[:-1]) * DURATION_UNITS_S[text[-1]]
        return float(text)
    except (ValueError, IndexError):
        raise UsageError(f"not a duration: {text!r} (e.g. 90s, 10m, 2h)") from None


def describe(event: AlertEvent) -> str:
    """One readable line for an alert event."""
    when = time.strftime("%H:%M:%S", time.localtime(event.ts_ns / 1e9))
    box = ", ".join(f"{v:.0f}" for v in event.box)
    return (
        f"{when} {event.kind.upper():<7} {event.severity:<8} {event.rule} camera={event.camera} "
        f"{event.label} score={event.score:.2f} track={event.track_id} box=[{box}] "
        f"snapshot={event.snapshot} id={event.event_id}"
    )


def cameras_table(statuses: Sequence[CameraStatus], *, now_ns: int | None = None) -> str:
    """The registry as a fixed-width table, one camera a line (a hint when there is none)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    lines = [
        f"{'CAMERA':<20} {'STATE':<10} {'OWNER':<24} {'FPS':>6} {'LAST FRAME':>11} {'SIZE':>10} "
        f"{'FRAMES':>8} {'RECONN':>6}  LAST ERROR"
    ]
    for s in statuses:
        last = f"{(now_ns - s.last_frame_ns) / 1e9:.1f}s ago" if s.last_frame_ns else "never"
        state = s.state if s.age_s(now_ns) < STALE_STATUS_S else f"{s.state}?"
        size = f"{s.width}x{s.height}" if s.width else "-"
        lines.append(
            f"{s.camera:<20} {state:<10} {s.owner[:24]:<24} {s.fps:>6.1f} {last:>11} {size:>10} "
            f"{s.frames_published:>8} {s.reconnects:>6}  {s.last_error}"
        )
    if not statuses:
        lines.append("(no cameras registered: is `vigil ingest` running against this Redis?)")
    return "\n".join(lines)
