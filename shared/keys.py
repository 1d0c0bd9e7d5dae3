"""Every Redis key and stream name Vigil uses, in one place.

``deploy/redis/users.acl`` grants each service's Redis user the keys (and commands) it uses: a new
name, or a new command on one, needs its line there too (``tests/deploy/test_redis_acl.py`` runs
every service's real traffic under its user and fails on a refusal)."""

PREFIX = "vigil"

DETECTIONS = f"{PREFIX}:detections"
ALERTS = f"{PREFIX}:alerts"
CAMERAS = f"{PREFIX}:cameras"
"""Set of camera ids that have a registry entry."""


def frames_stream(camera: str) -> str:
    """Bounded stream of encoded frames of one camera (ingest writes, the detector reads)."""
    return f"{PREFIX}:frames:{camera}"


def camera_key(camera: str) -> str:
    """Hash with a camera's live status: state, owner, last frame time, fps, last error."""
    return f"{PREFIX}:camera:{camera}"


def lease_key(group: str, camera: str) -> str:
    """Who owns ``camera`` within ``group`` (``ingest`` or ``detect``); value is the instance id."""
    return f"{PREFIX}:lease:{group}:{camera}"


def members_key(group: str) -> str:
    """Sorted set of live instances of ``group``; the score is the member's expiry (ms)."""
    return f"{PREFIX}:members:{group}"


def track_ids_key(camera: str) -> str:
    """Counter of the track ids handed out for ``camera``: every detector that owns the camera
    reserves its ids from it, so no id is used twice across restarts and lease moves."""
    return f"{PREFIX}:track_ids:{camera}"


def alert_recorded_key(event_id: str) -> str:
    """Set (with a TTL) when an event enters ``vigil:alerts``: a replayed event is recorded once."""
    return f"{PREFIX}:alert:recorded:{event_id}"


def alerts_cursor_key(camera: str) -> str:
    """Last ``vigil:detections`` entry id whose rules were evaluated for ``camera``."""
    return f"{PREFIX}:alerts:cursor:{camera}"


ALERTS_FORWARDED = f"{PREFIX}:alerts:forwarded"
"""Last ``vigil:alerts`` entry id sent over ZeroMQ."""


def snapshot_key(event_id: str) -> str:
    """JPEG of the frame that raised an event, with the box drawn."""
    return f"{PREFIX}:snapshot:{event_id}"


def snapshots_key(camera: str) -> str:
    """Sorted set of ``camera``'s snapshot keys, scored by event time (ms): beyond
    ``alerts.snapshot_max_per_camera`` the oldest are deleted."""
    return f"{PREFIX}:snapshots:{camera}"


def sink_group(sink: str) -> str:
    """The consumer group of ``vigil:alerts`` that follows the history for one sink (its cursor:
    the last entry read, and the entries read but not yet delivered or dead-lettered)."""
    return f"sink:{sink}"


def sink_dead_key(sink: str) -> str:
    """Bounded stream of a sink's dead letters: events it gave up on, with the last error."""
    return f"{PREFIX}:sinks:dead:{sink}"
