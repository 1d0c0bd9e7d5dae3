"""The console's HTML pages: the live grid, one camera, the alerts and one event. The data comes
from the JSON API and the live endpoints, fetched by the pages' small scripts (web/static/)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from web.routes.cameras import statuses
from web.routes.deps import checked_camera, render
from web.routes.events import checked_event_id

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def grid(request: Request) -> Response:
    return render(request, "grid.html", cameras=await statuses(request))


@router.get("/cameras/{camera}", response_class=HTMLResponse)
def camera_page(request: Request, camera: str) -> Response:
    return render(request, "camera.html", camera=checked_camera(camera))


@router.get("/events", response_class=HTMLResponse)
def events_page(request: Request) -> Response:
    return render(request, "events.html")


@router.get("/events/{event_id}", response_class=HTMLResponse)
def event_page(request: Request, event_id: str) -> Response:
    return render(request, "event.html", event_id=checked_event_id(event_id))
