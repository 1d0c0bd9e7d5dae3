"""The events API on the real event store, and the live alert feed (SSE) from ``vigil:alerts``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import redis

from shared import keys
from tests.web.conftest import CAMERA, EVENT_ID, Serve, alert, publish_alert, record_with_clip


def test_query_filters_pages_and_bounds(serve: Serve) -> None:
    served = serve()
    store = served.console.store
    for index in range(5):
        store.record_started(alert(f"e{index}", camera="cam1" if index % 2 else "cam2"))
    store.review("e1", reviewed=True)
    with served.logged_in() as client:
        page = client.get("/api/events", params={"limit": 2}).json()
        assert len(page["events"]) == 2 and page["next_cursor"]
        rest = client.get("/api/events", params={"limit": 10, "before": page["next_cursor"]}).json()
        assert len(rest["events"]) == 3 and rest["next_cursor"] is None
        cam1 = client.get("/api/events", params={"camera": "cam1"}).json()["events"]
        assert {e["event_id"] for e in cam1} == {"e1", "e3"}
        unreviewed = client.get("/api/events", params={"camera": "cam1", "reviewed": "false"}).json()[
            "events"
        ]
        assert [e["event_id"] for e in unreviewed] == ["e3"]
        assert client.get("/api/events", params={"since": "2999-01-01T00:00:00"}).json()["events"] == []
        for params, expect in (
            ({"limit": 1000}, "limit"),
            ({"reviewed": "maybe"}, "reviewed"),
            ({"since": "yesterday"}, "since"),
            ({"camera": "../x"}, "camera id"),
            ({"before": "nope"}, "cursor"),
        ):
            reply = client.get("/api/events", params=params)
            assert reply.status_code in (400, 422) and expect in reply.json()["detail"], (params, reply.text)
        assert client.get("/api/events/nope").status_code == 404


def test_review_and_note(serve: Serve) -> None:
    served = serve()
    served.console.store.record_started(alert())
    with served.logged_in() as client:
        reviewed = client.post(f"/api/events/{EVENT_ID}/review", json={"reviewed": True, "note": "a toy"})
        assert reviewed.json()["reviewed"] and reviewed.json()["note"] == "a toy"
        assert client.post(f"/api/events/{EVENT_ID}/review", json={"reviewed": "x"}).status_code == 422
        assert client.post("/api/events/unknown/review", json={"reviewed": True}).status_code == 404
    assert served.console.store.get(EVENT_ID).reviewed


def test_clips_are_served_with_range_requests(serve: Serve) -> None:
    served = serve()
    clip = record_with_clip(served, alert())
    size = clip.stat().st_size
    with served.logged_in() as client:
        event = client.get(f"/api/events/{EVENT_ID}").json()
        assert event["clip_url"] == f"/api/events/{EVENT_ID}/clip.mp4" and event["clip_offset_s"] == 1.0
        whole = client.get(event["clip_url"])
        assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
        assert whole.content == clip.read_bytes() and whole.headers["content-type"] == "video/mp4"
        part = client.get(event["clip_url"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.headers["content-range"] == f"bytes 100-199/{size}"
        assert part.content == clip.read_bytes()[100:200]
        assert client.get(event["clip_url"], headers={"Range": f"bytes={size + 10}-"}).status_code == 416


def test_snapshots_from_the_store_or_redis(serve: Serve, redis_client: redis.Redis) -> None:
    served = serve()
    served.console.store.record_started(alert("inredis"))
    with served.logged_in() as client:
        assert client.get("/api/events/inredis/snapshot.jpg").status_code == 404
        redis_client.set(keys.snapshot_key(CAMERA, "inredis"), b"\xff\xd8\xffjpeg")
        reply = client.get("/api/events/inredis/snapshot.jpg")
        assert reply.status_code == 200 and reply.content == b"\xff\xd8\xffjpeg"
        assert client.get(f"/api/events/{EVENT_ID}/clip.mp4").status_code == 404


def sse_events(reply: httpx.Response) -> Iterator[dict]:
    for line in reply.iter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


def test_the_live_feed_replays_then_follows(serve: Serve, redis_client: redis.Redis) -> None:
    served = serve(replay_events=2)
    for index in range(3):
        publish_alert(redis_client, alert(f"old{index}"))
    with served.logged_in() as client, client.stream("GET", "/api/alerts/live", timeout=20) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = sse_events(reply)
        assert [next(events)["event_id"], next(events)["event_id"]] == ["old1", "old2"]
        publish_alert(redis_client, alert("other", camera="cam9"))
        threading.Timer(0.3, publish_alert, (redis_client, alert("new"))).start()
        assert next(events)["event_id"] == "other"
        assert next(events)["event_id"] == "new"
    with (
        served.logged_in() as client,
        client.stream("GET", "/api/alerts/live?camera=cam1&replay=10") as reply,
    ):
        assert "cam9" not in {next(sse_events(reply))["camera"]}
