"""Alerts test helpers: Detections messages, a running AlertService, a free ZeroMQ endpoint."""

from __future__ import annotations

import time

import redis

from shared import keys
from shared.config import AlertRuleConfig, AlertsConfig, CameraConfig
from shared.redis import free_port
from shared.schemas import Detection, Detections

RULE = AlertRuleConfig(name="gun", labels=("pistol",), min_score=0.6, persistence_k=3, persistence_n=5,
                       end_after_s=1.0, cooldown_s=30)  # fmt: skip


def endpoint() -> tuple[str, str]:
    """(bind address, connect address) on a free port."""
    port = free_port()
    return f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port}"


def alerts_config(bind: str, **overrides: object) -> AlertsConfig:
    settings: dict[str, object] = {"instance": "alerts-1", "metrics_port": None, "lease_ttl_s": 1.0,
                                   "publish_endpoint": bind, "rules": (RULE,)}  # fmt: skip
    settings.update(overrides)
    return AlertsConfig(**settings)  # type: ignore[arg-type]


def cameras(*ids: str) -> tuple[CameraConfig, ...]:
    return tuple(CameraConfig(id=camera, url=f"rtsp://example/{camera}") for camera in ids)


def message(camera: str, seq: int, *objects: tuple[int, float], ts_ns: int | None = None) -> Detections:
    """A frame of ``camera`` with pistols ``(track_id, score)`` side by side."""
    return Detections(
        camera=camera, seq=seq, ts_ns=ts_ns or time.time_ns(), width=640, height=480, model="test",
        objects=tuple(
            Detection(label="pistol", class_id=0, score=score, box=(50.0 * i, 100.0, 50.0 * i + 40, 160.0),
                      track_id=track)
            for i, (track, score) in enumerate(objects)
        ),
    )  # fmt: skip


def push(client: redis.Redis, detections: Detections) -> None:
    client.xadd(keys.detections_stream(detections.camera), detections.encode())
