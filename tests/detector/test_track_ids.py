"""Track ids a camera never reuses, across detector restarts and lease moves."""

from __future__ import annotations

import redis

from detector.track_ids import TrackIds
from detector.tracking import MultiCameraTracker
from shared import keys
from shared.schemas import Detection


def test_each_owner_reserves_a_block_no_other_owner_gets(redis_client: redis.Redis) -> None:
    first = TrackIds(redis_client, "gate", block=3)
    ids_before_restart = [first() for _ in range(5)]  # a second block after three
    restarted = TrackIds(redis_client, "gate", block=3)
    ids_after = [restarted() for _ in range(2)]
    other_camera = TrackIds(redis_client, "yard", block=3)
    assert ids_before_restart == [1, 2, 3, 4, 5]
    assert ids_after == [7, 8], "after the first owner's second block (4-6)"
    assert other_camera() == 1, "cameras count on their own"
    assert int(redis_client.get(keys.track_ids_key("gate"))) == 9


def test_a_restarted_detector_never_hands_out_an_old_id(redis_client: redis.Redis) -> None:
    """Before: ids restarted at 1, and the alerts engine's cooldown of the old track 1 suppressed
    a new object's real alert."""
    pistol = Detection(label="pistol", class_id=0, score=0.95, box=(10.0, 10.0, 50.0, 90.0))
    seen: list[int] = []
    for _restart in range(2):
        trackers = MultiCameraTracker()
        trackers.start("gate", next_id=TrackIds(redis_client, "gate"))
        (tracked,) = trackers.update("gate", [pistol], time_s=0.0)  # confirmed at once on a first frame
        seen.append(tracked.track_id)
    assert seen[0] != seen[1] and all(track_id is not None for track_id in seen)
