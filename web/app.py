"""The console's ASGI application: every route behind :class:`~web.guard.Guard`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from shared.errors import EventStoreUnavailable, StoreUnavailable
from web.console import Console
from web.guard import Guard
from web.routes import alerts, cameras, events, health, pages, session

STATIC = Path(__file__).resolve().parent / "static"


def create_app(console: Console) -> FastAPI:
    app = FastAPI(
        title="Vigil console",
        version="1",
        description="Cameras, their live views, alert events with snapshots and clips, and their review. "
        "Every route needs a session (POST /login) or an API token (Authorization: Bearer vgl_...).",
    )
    app.state.console = console
    for module in (session, pages, cameras, alerts, events, health):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StoreUnavailable, _unavailable)
    app.add_exception_handler(EventStoreUnavailable, _unavailable)
    app.add_middleware(Guard, console=console)
    return app


async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
    """A bad parameter: 422 naming it and saying what was expected (never echoing the input)."""
    problems = [f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()]
    return JSONResponse({"detail": "; ".join(problems)}, status_code=422)


async def _unavailable(_request: Request, error: StoreUnavailable | EventStoreUnavailable) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": "2"})
