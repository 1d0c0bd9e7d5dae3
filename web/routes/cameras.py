"""Cameras: their status from the registry, and each one's live view as MJPEG."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from shared.logs import redact
from shared.registry import CameraStatus, read_statuses
from web.live import LiveFrame
from web.routes.deps import checked_camera, console_of

router = APIRouter(prefix="/api/cameras", tags=["cameras"])
UP_WITHIN_S = 10.0
"""A camera is up while streaming and reported on within this long."""
BOUNDARY = "vigil-frame"
IDLE_CHECK_S = 5.0


class CameraOut(BaseModel):
    camera: str
    up: bool = Field(description="Streaming, and its ingest reported within the last 10 s")
    state: Literal["connecting", "streaming", "backoff", "ended", "stopped"]
    fps: float
    width: int
    height: int
    last_frame_age_s: float | None = Field(description="Seconds since its last frame (None: none yet)")
    frames_published: int
    reconnects: int
    last_error: str = Field(description="The last source error (it names the camera, never its URL)")

    @classmethod
    def of(cls, status: CameraStatus, now_ns: int) -> CameraOut:
        return cls(
            camera=status.camera,
            up=status.state == "streaming" and status.age_s(now_ns) < UP_WITHIN_S,
            state=status.state,
            fps=status.fps,
            width=status.width,
            height=status.height,
            last_frame_age_s=(now_ns - status.last_frame_ns) / 1e9 if status.last_frame_ns else None,
            frames_published=status.frames_published,
            reconnects=status.reconnects,
            last_error=redact(status.last_error),
        )


async def statuses(request: Request) -> list[CameraOut]:
    rows = await run_in_threadpool(read_statuses, console_of(request).client)
    now_ns = time.time_ns()
    return [CameraOut.of(status, now_ns) for status in rows]


@router.get("", summary="Every camera's status")
async def list_cameras(request: Request) -> list[CameraOut]:
    return await statuses(request)


@router.get("/{camera}", summary="One camera's status")
async def get_camera(request: Request, camera: str) -> CameraOut:
    return await _known(request, camera)


@router.get(
    "/{camera}/stream.mjpeg",
    summary="Live view (multipart/x-mixed-replace JPEGs, boxes drawn)",
    response_class=StreamingResponse,
    responses={200: {"content": {f"multipart/x-mixed-replace; boundary={BOUNDARY}": {}}}},
)
async def stream(request: Request, camera: str) -> StreamingResponse:
    await _known(request, camera)
    console = console_of(request)
    if console.hub.viewers >= console.config.max_streams:
        raise HTTPException(
            503,
            f"{console.config.max_streams} live streams already served (web.max_streams)",
            headers={"Retry-After": "5"},
        )
    return StreamingResponse(
        _parts(request, camera),
        media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _parts(request: Request, camera: str) -> AsyncIterator[bytes]:
    console = console_of(request)
    with console.hub.viewing(camera, asyncio.get_running_loop()) as viewer:
        while True:
            frame = await viewer.next(IDLE_CHECK_S)
            if frame is None:
                if await request.is_disconnected():
                    return
                continue
            console.metrics.frames_sent.labels(camera).inc()
            console.metrics.frame_latency_seconds.observe(max(0.0, (time.time_ns() - frame.ts_ns) / 1e9))
            yield _part(frame)


def _part(frame: LiveFrame) -> bytes:
    head = (
        f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(frame.jpeg)}\r\n"
        f"X-Frame-Seq: {frame.seq}\r\nX-Capture-Ts-Ns: {frame.ts_ns}\r\n\r\n"
    )
    return head.encode("ascii") + frame.jpeg + b"\r\n"


async def _known(request: Request, camera: str) -> CameraOut:
    checked_camera(camera)
    for status in await statuses(request):
        if status.camera == camera:
            return status
    raise HTTPException(404, f"no camera {camera!r} in the registry")
