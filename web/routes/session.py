"""Logging in and out. The login form posts ``user``, ``password`` and ``next`` url-encoded (it
works without JavaScript); a success sets the signed session cookie and goes to ``next``."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from web.auth import SESSION_COOKIE
from web.routes.deps import console_of, render

router = APIRouter(tags=["session"])
MAX_FORM_BYTES = 4096


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", next=_local(next), error=None)


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    console = console_of(request)
    client = request.client.host if request.client else "?"
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return Response("form too large", status_code=413)
    form = {name: values[0] for name, values in parse_qs(body.decode("utf-8", "replace")).items()}
    target = _local(form.get("next", "/"))
    wait_s = console.limiter.retry_after_s(client)
    if wait_s > 0:
        console.metrics.logins.labels("limited").inc()
        response = render(
            request, "login.html", next=target, error="Too many attempts; try again later.", status_code=429
        )
        response.headers["Retry-After"] = str(int(wait_s) + 1)
        return response
    ok = await run_in_threadpool(console.login.check, form.get("user", ""), form.get("password", ""))
    if not ok:
        console.limiter.failed(client)
        console.metrics.logins.labels("refused").inc()
        return render(request, "login.html", next=target, error="Wrong user or password.", status_code=401)
    console.limiter.succeeded(client)
    console.metrics.logins.labels("ok").inc()
    cookie, _session = console.sessions.issue(console.login.user)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=console.config.session_ttl_s,
        httponly=True,
        samesite="strict",
        secure=console.config.cookie_secure,
        path="/",
    )
    return response


@router.post("/logout", include_in_schema=False)
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _local(target: str) -> str:
    """Only a path on this site (no scheme, no //host): the login never redirects elsewhere."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
