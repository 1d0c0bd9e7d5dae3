"""The live alert feed as Server-Sent Events: the last events replayed, then each new one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from web.alertfeed import FeedEntry
from web.routes.deps import console_of

router = APIRouter(prefix="/api/alerts", tags=["alerts"])
KEEPALIVE_S = 15.0


@router.get(
    "/live",
    summary="Alert events as they are recorded (text/event-stream), after the last `replay`",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def live(
    request: Request,
    camera: Annotated[list[str], Query(description="Only these cameras (repeatable)")] = [],  # noqa: B006
    label: Annotated[list[str], Query(description="Only these labels (repeatable)")] = [],  # noqa: B006
    replay: Annotated[
        int | None, Query(ge=0, le=1000, description="Events replayed first (default: web.replay_events)")
    ] = None,
) -> StreamingResponse:
    console = console_of(request)
    count = console.config.replay_events if replay is None else replay

    def wanted(entry: FeedEntry) -> bool:
        return (not camera or entry.event.camera in camera) and (not label or entry.event.label in label)

    async def events() -> AsyncIterator[bytes]:
        with console.feed.subscribed(asyncio.get_running_loop()) as subscriber:
            replayed = await run_in_threadpool(console.feed.replay, count)
            last = replayed[-1].ordinal if replayed else (0, 0)
            for entry in replayed:
                if wanted(entry):
                    yield _sse(entry)
            while True:
                try:
                    entry = await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b": keep-alive\n\n"
                    continue
                if entry is None:
                    return
                if entry.ordinal > last and wanted(entry):
                    console.metrics.events_sent.inc()
                    yield _sse(entry)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _sse(entry: FeedEntry) -> bytes:
    return f"id: {entry.entry_id}\nevent: alert\ndata: {entry.event.to_json()}\n\n".encode()
