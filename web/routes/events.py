"""Alert events from the event store: query, one event, its snapshot and clip, its review."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field

from shared import keys
from shared.eventstore import ClipState, EventRecord
from shared.redis import call
from web.routes.deps import checked_camera, console_of

router = APIRouter(prefix="/api/events", tags=["events"])
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_PAGE = 200
NOTE_MAX = 2000


class EventOut(BaseModel):
    event_id: str
    camera: str
    rule: str
    severity: str
    label: str
    track_id: int | None
    score: float
    box: tuple[float, float, float, float] = Field(description="xyxy in pixels of frame_width × frame_height")
    frame_width: int
    frame_height: int
    started_ms: int = Field(description="When the alert started (Unix ms)")
    ended_ms: int | None
    reviewed: bool
    note: str | None
    clip_state: ClipState
    clip_error: str | None
    clip_offset_s: float | None = Field(description="Where in the clip the alert starts (seconds)")
    snapshot_url: str
    clip_url: str | None = Field(description="The clip (video/mp4, seekable), once it is done")

    @classmethod
    def of(cls, record: EventRecord) -> EventOut:
        base = f"/api/events/{record.event_id}"
        offset = None if record.clip_start_ms is None else (record.started_ms - record.clip_start_ms) / 1000
        return cls(
            event_id=record.event_id,
            camera=record.camera,
            rule=record.rule,
            severity=record.severity,
            label=record.label,
            track_id=record.track_id,
            score=record.score,
            box=record.box,
            frame_width=record.frame_width,
            frame_height=record.frame_height,
            started_ms=record.started_ms,
            ended_ms=record.ended_ms,
            reviewed=record.reviewed,
            note=record.note,
            clip_state=record.clip_state,
            clip_error=record.clip_error,
            clip_offset_s=offset,
            snapshot_url=f"{base}/snapshot.jpg",
            clip_url=f"{base}/clip.mp4" if record.clip_state == ClipState.DONE else None,
        )


class EventsPage(BaseModel):
    events: list[EventOut]
    next_cursor: str | None = Field(description="Pass as `before` for the next (older) page")


class ReviewIn(BaseModel):
    reviewed: bool
    note: str | None = Field(None, max_length=NOTE_MAX, description="Replaces the note ('' clears it)")


def checked_event_id(event_id: str) -> str:
    if not EVENT_ID.fullmatch(event_id):
        raise HTTPException(400, "event id: letters, digits, '_', '-', at most 64")
    return event_id


@router.get("", summary="Events, newest first, filtered; one page")
async def query_events(
    request: Request,
    camera: Annotated[str | None, Query(description="Only this camera")] = None,
    label: Annotated[str | None, Query(max_length=64, description="Only this object label")] = None,
    since: Annotated[
        datetime | None, Query(description="Started at or after (ISO 8601; UTC if no zone)")
    ] = None,
    until: Annotated[datetime | None, Query(description="Started before (ISO 8601; UTC if no zone)")] = None,
    reviewed: Annotated[bool | None, Query(description="Only reviewed (true) or unreviewed (false)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Page size, at most {MAX_PAGE}")] = 50,
    before: Annotated[str | None, Query(max_length=200, description="A page's next_cursor")] = None,
) -> EventsPage:
    store = console_of(request).store
    if camera is not None:
        checked_camera(camera)
    try:
        page = await run_in_threadpool(
            store.query,
            camera=camera,
            label=label,
            since_ms=_ms(since),
            until_ms=_ms(until),
            reviewed=reviewed,
            limit=limit,
            before=before,
        )
    except ValueError as error:
        raise HTTPException(400, str(error)) from None
    return EventsPage(events=[EventOut.of(record) for record in page.events], next_cursor=page.next_cursor)


@router.get("/{event_id}", summary="One event")
async def get_event(request: Request, event_id: str) -> EventOut:
    return EventOut.of(await _record(request, event_id))


@router.post("/{event_id}/review", summary="Mark an event reviewed (or not), with an optional note")
async def review_event(request: Request, event_id: str, review: ReviewIn) -> EventOut:
    console = console_of(request)
    checked_event_id(event_id)
    record = await run_in_threadpool(
        console.store.review, event_id, reviewed=review.reviewed, note=review.note
    )
    if record is None:
        raise HTTPException(404, f"no event {event_id}")
    console.metrics.reviews.inc()
    return EventOut.of(record)


@router.get(
    "/{event_id}/snapshot.jpg",
    summary="The frame that raised the event, box drawn",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def snapshot(request: Request, event_id: str) -> Response:
    record = await _record(request, event_id)
    console = console_of(request)
    if record.snapshot_path:
        return FileResponse(_media_path(console.clips_dir, record.snapshot_path), media_type="image/jpeg")
    key = keys.snapshot_key(record.camera, record.event_id)
    jpeg = await run_in_threadpool(call, lambda: console.client.get(key))
    if not jpeg:
        raise HTTPException(404, f"event {event_id} has no snapshot (expired, or none was saved)")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get(
    "/{event_id}/clip.mp4",
    summary="The event's clip (H.264 MP4; Range requests for seeking)",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}}, 206: {}},
)
async def clip(request: Request, event_id: str) -> FileResponse:
    record = await _record(request, event_id)
    if record.clip_state != ClipState.DONE or not record.clip_path:
        raise HTTPException(
            404,
            f"event {event_id} has no clip ({record.clip_state}"
            f"{': ' + record.clip_error if record.clip_error else ''})",
        )
    return FileResponse(_media_path(console_of(request).clips_dir, record.clip_path), media_type="video/mp4")


async def _record(request: Request, event_id: str) -> EventRecord:
    checked_event_id(event_id)
    record = await run_in_threadpool(console_of(request).store.get, event_id)
    if record is None:
        raise HTTPException(404, f"no event {event_id}")
    return record


def _media_path(root: Path, relative: str) -> Path:
    """``relative`` under ``root``, refusing anything that resolves outside it (a stored path with
    ``..`` or a link out), and 404 for a file that is gone (retention)."""
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise HTTPException(400, "media path outside the clips folder")
    if not path.is_file():
        raise HTTPException(404, "the file is gone (deleted by retention?)")
    return path


def _ms(moment: datetime | None) -> int | None:
    """Unix ms of an ISO time; one without a zone is UTC."""
    if moment is None:
        return None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)
