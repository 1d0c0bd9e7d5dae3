"""Track ids that a camera never reuses, across detector restarts and lease moves.

The alerts engine keys per-track state (k-of-n windows, cooldowns) by ``(rule, camera, track id)``,
so a new detector whose ids started at 1 again would inherit the old tracks' cooldowns and lose
real alerts. Each owner of a camera reserves blocks of ids from the camera's Redis counter
(``INCRBY``) and hands them out in order; a restarted or new owner gets the next block.
"""

from __future__ import annotations

import logging

import redis

from shared import keys
from shared.errors import StoreUnavailable
from shared.redis import call

log = logging.getLogger(__name__)
TRACK_ID_BLOCK = 10_000
"""Ids reserved per Redis call: a camera that confirms a track every frame at 5 fps needs a new
block every 33 minutes."""


class TrackIds:
    """The id source of one camera's tracker (``IoUTracker(next_id=...)``). The first block is
    reserved on construction (raises :class:`StoreUnavailable`, so a lease round can retry)."""

    def __init__(self, client: redis.Redis, camera: str, *, block: int = TRACK_ID_BLOCK) -> None:
        self._client = client
        self._camera = camera
        self._block = block
        self._next, self._end = self._reserve()

    def __call__(self) -> int:
        if self._next > self._end:
            try:
                self._next, self._end = self._reserve()
            except StoreUnavailable:  # keep tracking; these ids may meet a later owner's block
                log.warning("camera %s: no new block of track ids (redis unavailable); continuing past %d",
                            self._camera, self._end)  # fmt: skip
                self._end += self._block
        track_id, self._next = self._next, self._next + 1
        return track_id

    def _reserve(self) -> tuple[int, int]:
        """The first and last id of a newly reserved block."""
        end = int(call(lambda: self._client.incrby(keys.track_ids_key(self._camera), self._block)))
        return end - self._block + 1, end
