"""The console's gate: a logged-out client gets nothing from any route (every route of the app is
enumerated, so a new one cannot be forgotten), media included; sessions, CSRF, API tokens, the login
rate limit, path traversal, and no open console beyond loopback."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import redis
from starlette.routing import Mount

from shared.errors import ConfigError
from tests.web.conftest import (
    CAMERA,
    EVENT_ID,
    PASSWORD,
    USER,
    Serve,
    Served,
    alert,
    publish_frame,
    record_with_clip,
    register,
)
from web.auth import SESSION_COOKIE, ApiTokens, LoginLimiter, Sessions, add_token
from web.guard import PUBLIC_PATHS, PUBLIC_PREFIXES
from web.passwords import BadHash, hash_password, verify_password

SAMPLE_PARAMS = {"camera": CAMERA, "event_id": EVENT_ID}
MEDIA_MAGIC = (b"\xff\xd8\xff", b"ftyp", b"--vigil-frame")
"""JPEG, MP4 and MJPEG bytes: none may reach a logged-out client."""


def routes(served: Served) -> list[tuple[str, str]]:
    """(method, path) of every route the app has, path parameters filled in with real values."""
    found = []
    for methods, template in _walk(served.service._server.config.app.routes, ""):
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLE_PARAMS[m[1]], template)
        found.extend((method, path) for method in sorted(methods - {"HEAD"}))
    return found


def _walk(routes: list, prefix: str) -> Iterator[tuple[set[str], str]]:
    """Routes, into included routers (FastAPI keeps them as objects holding the original router)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _walk(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            yield {"GET"}, f"{prefix}{route.path}/console.js"
        else:
            yield set(route.methods or {"GET"}), prefix + route.path


@pytest.fixture
def with_media(serve: Serve, redis_client: redis.Redis) -> Served:
    served = serve()
    register(redis_client)
    publish_frame(redis_client, 1)
    record_with_clip(served, alert())
    return served


def test_a_logged_out_client_gets_nothing_from_any_route(with_media: Served) -> None:
    every = routes(with_media)
    assert ("GET", f"/api/events/{EVENT_ID}/clip.mp4") in every and ("GET", "/docs") in every
    public = {(m, p) for m, p in every if p in PUBLIC_PATHS or p.startswith(PUBLIC_PREFIXES)}
    assert {p for _m, p in public} == {"/login", "/healthz", "/readyz", "/static/console.js"}
    with with_media.client() as anonymous:
        for method, path in sorted(set(every) - public):
            with anonymous.stream(method, path, headers={"Range": "bytes=0-"}) as reply:
                body = reply.read()
                assert reply.status_code in (401, 303), (method, path, reply.status_code)
                if reply.status_code == 303:
                    assert reply.headers["location"].startswith("/login"), path
                assert not any(magic in body for magic in MEDIA_MAGIC), (method, path)
        # and the same routes do answer a logged-in client: the test above is not vacuous
        with with_media.logged_in() as client:
            assert client.get(f"/api/events/{EVENT_ID}/clip.mp4").content[4:8] == b"ftyp"
            assert client.get(f"/api/events/{EVENT_ID}/snapshot.jpg").content[:3] == b"\xff\xd8\xff"
            assert client.get("/docs").status_code == 200 and client.get("/api/cameras").json()[0]["up"]


def test_forged_expired_and_foreign_sessions_are_refused(serve: Serve) -> None:
    served = serve()
    other = Sessions(b"k" * 32, ttl_s=60).issue(USER)[0]  # signed with another key
    now = [0.0]
    sessions = Sessions(b"k" * 32, ttl_s=60, clock=lambda: now[0])
    cookie, _session = sessions.issue(USER)
    assert sessions.read(cookie) is not None
    now[0] = 61.0
    assert sessions.read(cookie) is None, "expired"
    with served.logged_in() as client:
        cookie = client.cookies[SESSION_COOKIE]
    payload, signature = cookie.split(".")
    for value in (other, f"{payload}x.{signature}", "garbage", f"{payload}."):
        with served.client(cookies={SESSION_COOKIE: value}) as client:
            assert client.get("/api/cameras").status_code == 401, value


def test_the_session_cookie_is_httponly_samesite_strict(serve: Serve) -> None:
    with serve().client() as client:
        reply = client.post("/login", data={"user": USER, "password": PASSWORD, "next": "//evil.example/"})
    assert reply.status_code == 303 and reply.headers["location"] == "/", "never redirected off-site"
    cookie = reply.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie


def test_writes_need_the_csrf_token(serve: Serve) -> None:
    served = serve()
    served.console.store.record_started(alert())
    with served.logged_in() as client:
        token = client.headers.pop("X-CSRF-Token")
        path = f"/api/events/{EVENT_ID}/review"
        assert client.post(path, json={"reviewed": True}).status_code == 403
        wrong = client.post(path, json={"reviewed": True}, headers={"X-CSRF-Token": "wrong"})
        assert wrong.status_code == 403
        assert not served.console.store.get(EVENT_ID).reviewed
        assert client.post(path, json={"reviewed": True}, headers={"X-CSRF-Token": token}).status_code == 200
    assert served.console.store.get(EVENT_ID).reviewed


def test_api_tokens_open_the_api_hashed_at_rest(serve: Serve, tmp_path) -> None:
    tokens_file = tmp_path / "tokens"
    token = add_token(str(tokens_file), "nvr")
    assert token not in tokens_file.read_text() and tokens_file.stat().st_mode & 0o077 == 0
    served = serve(api_tokens_file=str(tokens_file))
    served.console.store.record_started(alert())
    with served.client(headers={"Authorization": f"Bearer {token}"}) as client:
        assert client.get("/api/events").json()["events"][0]["event_id"] == EVENT_ID
        assert client.post(f"/api/events/{EVENT_ID}/review", json={"reviewed": True}).status_code == 200
    with served.client(headers={"Authorization": "Bearer vgl_wrong"}) as client:
        assert client.get("/api/events").status_code == 401
    assert ApiTokens.load(str(tokens_file)).name_of(token) == "nvr"


def test_logins_are_rate_limited_per_address(serve: Serve) -> None:
    served = serve(login_attempts=3, login_window_s=60)
    with served.client() as client:
        for _ in range(3):
            assert client.post("/login", data={"user": USER, "password": "wrong"}).status_code == 401
        limited = client.post("/login", data={"user": USER, "password": PASSWORD})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert served.console.metrics.logins.labels("limited")._value.get() == 1


def test_the_limiter_forgets_failures_after_the_window() -> None:
    now = [0.0]
    limiter = LoginLimiter(attempts=2, window_s=10, clock=lambda: now[0])
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after_s("a") == 10 and limiter.retry_after_s("b") == 0
    now[0] = 10.5
    assert limiter.retry_after_s("a") == 0


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "..", "a%00b", "x" * 65, "a.b"])
def test_traversal_in_event_names_is_refused(with_media: Served, name: str) -> None:
    with with_media.logged_in() as client:
        for suffix in ("clip.mp4", "snapshot.jpg"):
            reply = client.get(f"/api/events/{name}/{suffix}")
            assert reply.status_code in (400, 404), (name, suffix)
            assert b"root:" not in reply.content and reply.content[:3] != b"\xff\xd8\xff"


def test_a_stored_path_outside_the_clips_folder_is_refused(with_media: Served, tmp_path) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8\xff not for you")
    store = with_media.console.store
    store.set_snapshot(EVENT_ID, path="../secret.jpg")
    store.set_clip(EVENT_ID, state=store.get(EVENT_ID).clip_state, path="/etc/passwd")
    with with_media.logged_in() as client:
        assert client.get(f"/api/events/{EVENT_ID}/snapshot.jpg").status_code == 400
        assert client.get(f"/api/events/{EVENT_ID}/clip.mp4").status_code == 400


def test_no_open_console_beyond_loopback(serve: Serve) -> None:
    for fields in ({}, {"api_tokens_file": "/nonexistent/tokens"}):  # no tokens in a missing file
        with pytest.raises(ConfigError, match="not loopback, and no password or API token"):
            serve(host="0.0.0.0", password_hash=None, **fields)


def test_without_a_login_loopback_only_and_writes_still_need_the_token(serve: Serve) -> None:
    served = serve(password_hash=None)
    served.console.store.record_started(alert())
    with served.client() as client:
        assert client.get("/api/cameras").status_code == 200
        assert client.get("/api/cameras", headers={"Host": "rebound.example"}).status_code == 403
        path = f"/api/events/{EVENT_ID}/review"
        assert client.post(path, json={"reviewed": True}).status_code == 403
        token = served.console.open_csrf
        assert client.post(path, json={"reviewed": True}, headers={"X-CSRF-Token": token}).status_code == 200


def test_password_hashes() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$15$8$1$") and PASSWORD not in stored
    assert verify_password(PASSWORD, stored) and not verify_password("wrong", stored)
    assert hash_password(PASSWORD) != stored, "salted"
    for broken in ("plain", "scrypt$99$8$1$AA==$AA==", "scrypt$15$8$1$!!$AA=="):
        with pytest.raises(BadHash):
            verify_password(PASSWORD, broken)


def test_a_bad_password_hash_is_refused_at_start(serve: Serve) -> None:
    with pytest.raises(ConfigError, match="password_hash"):
        serve(password_hash="md5$abc")


