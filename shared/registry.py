"""The camera registry: each camera's live status in a Redis hash, for ``vigil cameras``,
dashboards and other services. Written by whoever ingests the camera; never holds a URL."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import Literal

import redis

from shared import keys
from shared.redis import call

CameraState = Literal["connecting", "streaming", "backoff", "ended", "stopped"]
STATUS_TTL_S = 24 * 3600
"""A camera nobody has reported on for a day drops out of the registry."""


@dataclass(frozen=True)
class CameraStatus:
    camera: str
    state: CameraState
    owner: str
    updated_ns: int
    last_frame_ns: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    frames_published: int = 0
    reconnects: int = 0
    last_error: str = ""

    def age_s(self, now_ns: int | None = None) -> float:
        return ((now_ns or time.time_ns()) - self.updated_ns) / 1e9


def write_status(client: redis.Redis, status: CameraStatus) -> None:
    """Store ``status`` (raises StoreUnavailable when Redis is down)."""
    key = keys.camera_key(status.camera)

    def run() -> None:
        pipe = client.pipeline(transaction=False)
        pipe.hset(key, mapping={name: str(value) for name, value in asdict(status).items()})
        pipe.expire(key, STATUS_TTL_S)
        pipe.sadd(keys.CAMERAS, status.camera)
        pipe.execute()

    call(run)


def registered_cameras(client: redis.Redis) -> list[str]:
    """Ids of every camera with a registry entry, sorted."""
    return sorted(m.decode() for m in call(lambda: client.smembers(keys.CAMERAS)))


def read_statuses(client: redis.Redis) -> list[CameraStatus]:
    """All registered cameras' status, sorted by camera id; vanished entries are pruned."""
    cameras = registered_cameras(client)
    pipe = client.pipeline(transaction=False)
    for camera in cameras:
        pipe.hgetall(keys.camera_key(camera))
    rows = call(pipe.execute)
    statuses = []
    types = {f.name: f.type for f in fields(CameraStatus)}
    for camera, row in zip(cameras, rows, strict=True):
        if not row:
            call(lambda c=camera: client.srem(keys.CAMERAS, c))
            continue
        values = {k.decode(): v.decode() for k, v in row.items() if k.decode() in types}
        statuses.append(
            CameraStatus(
                **{
                    name: (int(v) if types[name] == "int" else float(v) if types[name] == "float" else v)
                    for name, v in values.items()
                }
            )
        )
    return statuses
