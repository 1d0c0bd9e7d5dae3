"""The console's gate, in front of every route: a request is let through only with a valid
session cookie or API token (``Authorization: Bearer vgl_...``), except the few public paths (the
login page, the health probes, the static CSS and JS). Writes with a session cookie must carry its
CSRF token in ``X-CSRF-Token``. Without any login configured (allowed on loopback only) every
request passes, but writes still need the console's CSRF token, and the Host header must name
this host (a DNS-rebinding page cannot reach it).

An ASGI middleware rather than a per-route dependency: a route added later is closed by default.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from web.auth import CSRF_HEADER, SESSION_COOKIE, Session
from web.console import Console

PUBLIC_PATHS = frozenset({"/login", "/healthz", "/readyz"})
PUBLIC_PREFIXES = ("/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class Guard:
    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app, self.console = app, console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, reason, message = refusal
        self.console.metrics.denied.labels(reason).inc()
        wants_page = scope["method"] == "GET" and not scope["path"].startswith("/api/") and status == 401
        if wants_page:
            await _redirect(send, "/login?next=" + quote(scope["path"], safe="/"))
        else:
            await _json_error(send, status, message)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str, str] | None:
        """None to let the request through, else (status, metric reason, message)."""
        safe = scope["method"] in SAFE_METHODS
        if not self.console.auth_enabled:
            if headers.get("host", "").rsplit(":", 1)[0] not in LOCAL_HOSTS:
                return 403, "host", "the console without a login answers to localhost only"
            if not safe and headers.get(CSRF_HEADER) != self.console.open_csrf:
                return 403, "csrf", "missing or wrong X-CSRF-Token"
            scope.setdefault("state", {}).update(principal="local", csrf=self.console.open_csrf)
            return None
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("bearer "):
            name = self.console.tokens.name_of(authorization[7:].strip())
            if name is None:
                return 401, "unauthenticated", "unknown API token"
            scope.setdefault("state", {}).update(principal=f"token:{name}", csrf="")
            return None
        session = self.session_of(headers)
        if session is None:
            return 401, "unauthenticated", "log in first (POST /login) or send an API token"
        if not safe and headers.get(CSRF_HEADER) != session.csrf:
            return 403, "csrf", "missing or wrong X-CSRF-Token"
        scope.setdefault("state", {}).update(principal=session.user, csrf=session.csrf)
        return None

    def session_of(self, headers: Headers) -> Session | None:
        cookies = headers.get("cookie", "")
        for part in cookies.split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE:
                return self.console.sessions.read(value)
        return None


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _json_error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="vigil"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
