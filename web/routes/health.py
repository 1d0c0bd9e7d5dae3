"""Health: ``/healthz`` (the process answers), ``/readyz`` (Redis answers), ``/api/health`` (details)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from web.routes.deps import console_of

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    redis: bool
    live_streams: int
    auth: bool


@router.get("/healthz", response_class=PlainTextResponse, include_in_schema=False)
def healthz() -> str:
    return "ok\n"


@router.get("/readyz", response_class=PlainTextResponse, include_in_schema=False)
async def readyz(request: Request) -> PlainTextResponse:
    ready = await run_in_threadpool(console_of(request).redis_answers)
    return PlainTextResponse("ready\n" if ready else "not ready\n", status_code=200 if ready else 503)


@router.get("/api/health", summary="What the console depends on, and whether it answers")
async def health(request: Request) -> HealthOut:
    console = console_of(request)
    return HealthOut(
        redis=await run_in_threadpool(console_of(request).redis_answers),
        live_streams=console.hub.viewers,
        auth=console.auth_enabled,
    )
