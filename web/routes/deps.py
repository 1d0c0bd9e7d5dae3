"""What the route modules share: the console of a request, its templates, camera id checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from shared.schemas import CAMERA_ID
from web.console import Console

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parent.parent / "templates")


def console_of(request: Request) -> Console:
    return request.app.state.console


def render(request: Request, template: str, *, status_code: int = 200, **context: Any) -> Response:
    console = console_of(request)
    state = request.scope.get("state", {})
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {"csrf": state.get("csrf", ""), "auth": console.auth_enabled, **context},
        status_code=status_code,
    )


def checked_camera(camera: str) -> str:
    if not CAMERA_ID.fullmatch(camera):
        raise HTTPException(400, "camera id: letters, digits, '_', '.', '-', at most 64")
    return camera
