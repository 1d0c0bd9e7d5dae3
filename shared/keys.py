"""Every Redis key and stream name Vigil uses, in one place.

Keys are laid out for Redis Cluster: everything about one camera carries the camera's hash tag,
``vigil:{camera}:...``, so it lives in one slot (on one shard) and every script or transaction on a
camera's keys stays in that slot. Group-wide keys (``vigil:members:{group}``, ``vigil:cameras``,
the alert history) are single keys: each script or transaction on them touches one key, or keys
that share its hash tag (the recorded-event markers carry the history's own name as their tag).
On a single node the tags are just characters of the name.

``deploy/redis/users.acl`` grants each service's Redis user the keys (and commands) it uses: a new
name, or a new command on one, needs its line there too (``tests/deploy/test_redis_acl.py`` runs
every service's real traffic under its user and fails on a refusal)."""

PREFIX = "vigil"

ALERTS = f"{PREFIX}:alerts"
"""The alert history: one stream, in the order events were recorded (all cameras)."""
CAMERAS = f"{PREFIX}:cameras"
"""Set of camera ids that have a registry entry."""
ALERTS_FORWARDED = f"{PREFIX}:alerts:forwarded"
"""Last ``vigil:alerts`` entry id sent over ZeroMQ."""


def camera_prefix(camera: str) -> str:
    """What every key of ``camera`` starts with: its hash tag, so they share one cluster slot."""
    return f"{PREFIX}:{{{camera}}}"


def frames_stream(camera: str) -> str:
    """Bounded stream of encoded frames of one camera (ingest writes, the detector reads)."""
    return f"{camera_prefix(camera)}:frames"


def detections_stream(camera: str) -> str:
    """Bounded stream of one camera's Detections (the detector writes, the alerts service reads)."""
    return f"{camera_prefix(camera)}:detections"


def camera_key(camera: str) -> str:
    """Hash with a camera's live status: state, owner, last frame time, fps, last error."""
    return f"{camera_prefix(camera)}:camera"


def lease_key(group: str, camera: str) -> str:
    """Who owns ``camera`` within ``group`` (``ingest``, ``detect``, ...); value is the instance id."""
    return f"{camera_prefix(camera)}:lease:{group}"


def members_key(group: str) -> str:
    """Sorted set of live instances of ``group``; the score is the member's expiry (ms)."""
    return f"{PREFIX}:members:{group}"


def track_ids_key(camera: str) -> str:
    """Counter of the track ids handed out for ``camera``: every detector that owns the camera
    reserves its ids from it, so no id is used twice across restarts and lease moves."""
    return f"{camera_prefix(camera)}:track_ids"


def alert_recorded_key(event_id: str) -> str:
    """Set (with a TTL) when an event enters ``vigil:alerts``: a replayed event is recorded once.
    Tagged with the history's name, so the recording script's two keys share its slot."""
    return f"{PREFIX}:alert:recorded:{{{ALERTS}}}:{event_id}"


def alerts_cursor_key(camera: str) -> str:
    """Last entry id of ``camera``'s detections stream whose rules were evaluated."""
    return f"{camera_prefix(camera)}:alerts:cursor"


def snapshot_key(camera: str, event_id: str) -> str:
    """JPEG of the frame that raised an event, with the box drawn."""
    return f"{camera_prefix(camera)}:snapshot:{event_id}"


def snapshots_key(camera: str) -> str:
    """Sorted set of ``camera``'s snapshot keys, scored by event time (ms): beyond
    ``alerts.snapshot_max_per_camera`` the oldest are deleted."""
    return f"{camera_prefix(camera)}:snapshots"


def sink_group(sink: str) -> str:
    """The consumer group of ``vigil:alerts`` that follows the history for one sink (its cursor:
    the last entry read, and the entries read but not yet delivered or dead-lettered)."""
    return f"sink:{sink}"


RECORD_GROUP = "record"
"""The consumer group of ``vigil:alerts`` that ``vigil record`` follows (every replica reads it)."""


def sink_dead_key(sink: str) -> str:
    """Bounded stream of a sink's dead letters: events it gave up on, with the last error. Tagged
    with the history's name, so the transaction that dead-letters and acknowledges an entry of
    ``vigil:alerts`` stays in one slot."""
    return f"{PREFIX}:sinks:dead:{{{ALERTS}}}:{sink}"


# -- the layout before Redis Cluster support (only ``vigil migrate-keys`` reads it) -------------

LEGACY_STATE = {
    f"{PREFIX}:track_ids:": track_ids_key,
    f"{PREFIX}:alerts:cursor:": alerts_cursor_key,
    f"{PREFIX}:alert:recorded:": alert_recorded_key,
}
"""Old name prefix → the new name of the rest (a camera or an event id): state a restart must keep."""
LEGACY_SNAPSHOT = f"{PREFIX}:snapshot:"
"""Old snapshot keys keep their names (events in the history point at them) until their TTL."""
LEGACY_TRANSIENT = tuple(
    f"{PREFIX}:{kind}" for kind in ("frames:", "camera:", "lease:", "snapshots:", "detections")
)
"""Old names of what the services rebuild by themselves (a drained deployment loses nothing)."""
