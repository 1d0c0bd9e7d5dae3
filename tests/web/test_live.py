"""Live views: frames from the camera's stream with their detections' boxes drawn, over MJPEG,
read only while someone watches; camera status from the registry."""

from __future__ import annotations

import time

import cv2
import numpy as np
import redis

from shared import keys
from tests.support.mjpeg import parts
from tests.support.services import wait_for
from tests.web.conftest import BOX, CAMERA, Serve, publish_detections, publish_frame, register


def red_share(jpeg: bytes, box: tuple[float, ...]) -> float:
    """Share of the box outline's pixels that are red (BGR: high R, low G and B)."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    x1, y1, x2, y2 = (round(v) for v in box)
    edge = np.concatenate([image[y2, x1:x2], image[y1:y2, x2]])  # bottom and right edges (no caption)
    red = (edge[:, 2] > 180) & (edge[:, 1] < 80) & (edge[:, 0] < 80)
    return float(red.mean())


def test_a_viewed_camera_streams_its_frames_with_boxes(serve: Serve, redis_client: redis.Redis) -> None:
    served = serve(detections_wait_ms=2000)
    register(redis_client)
    first = publish_frame(redis_client, 1)
    publish_detections(redis_client, first)
    with served.logged_in() as client, client.stream("GET", f"/api/cameras/{CAMERA}/stream.mjpeg") as reply:
        assert reply.headers["content-type"].startswith("multipart/x-mixed-replace")
        stream = parts(reply)
        opening = next(stream)  # the newest frame at once, with its box
        assert opening.headers["x-frame-seq"] == "1" and red_share(opening.jpeg, BOX) > 0.9
        assert served.console.metrics.feeds._value.get() == 1
        frame = publish_frame(redis_client, 2)
        time.sleep(0.2)  # the frame waits for its detections (up to detections_wait_ms) ...
        publish_detections(redis_client, frame, box=(10, 10, 100, 100))
        part = next(stream)  # ... and comes with them
        assert part.headers["x-frame-seq"] == "2" and int(part.headers["x-capture-ts-ns"]) == frame.ts_ns
        assert red_share(part.jpeg, (10, 10, 100, 100)) > 0.9 and red_share(part.jpeg, BOX) < 0.1
    assert wait_for(lambda: served.console.metrics.feeds._value.get() == 0, 5), (
        "the feed stops with its viewer"
    )
    assert served.console.metrics.frames_annotated.labels(CAMERA)._value.get() == 2


def test_frames_without_detections_are_shown_as_they_are(serve: Serve, redis_client: redis.Redis) -> None:
    served = serve(detections_wait_ms=100)
    register(redis_client)
    with served.logged_in() as client, client.stream("GET", f"/api/cameras/{CAMERA}/stream.mjpeg") as reply:
        stream = parts(reply)
        for seq in range(3):
            frame = publish_frame(redis_client, seq)
            part = next(stream)
            assert part.headers["x-frame-seq"] == str(seq)
            assert part.jpeg == frame.data, "passed through: no decode, no re-encode"
    assert served.console.metrics.frames_unmatched.labels(CAMERA)._value.get() == 3


def test_viewers_share_one_reader_and_idle_cameras_cost_nothing(
    serve: Serve, redis_client: redis.Redis
) -> None:
    served = serve(detections_wait_ms=0)
    register(redis_client)
    register(redis_client, "cam2")
    publish_frame(redis_client, 1)
    assert served.console.metrics.feeds._value.get() == 0
    path = f"/api/cameras/{CAMERA}/stream.mjpeg"
    with served.logged_in() as one, served.logged_in() as two, one.stream("GET", path) as a, \
            two.stream("GET", path) as b:  # fmt: skip
        first, second = parts(a), parts(b)  # held: a closed generator closes its connection
        assert next(first).headers["x-frame-seq"] == next(second).headers["x-frame-seq"] == "1"
        assert served.console.metrics.feeds._value.get() == 1, "cam2, unviewed, is not read"
        assert served.console.hub.viewers == 2


def test_a_malformed_frame_is_counted_and_skipped(serve: Serve, redis_client: redis.Redis) -> None:
    served = serve(detections_wait_ms=0)
    register(redis_client)
    with served.logged_in() as client, client.stream("GET", f"/api/cameras/{CAMERA}/stream.mjpeg") as reply:
        stream = parts(reply)
        publish_frame(redis_client, 4)
        assert next(stream).headers["x-frame-seq"] == "4"  # the feed is reading
        bad = {"v": "1", "camera": CAMERA, "seq": "x", "codec": "jpeg", "width": 9, "height": 9, "data": "x"}
        redis_client.xadd(keys.frames_stream(CAMERA), bad)
        publish_frame(redis_client, 5)
        assert next(stream).headers["x-frame-seq"] == "5"
    assert served.console.metrics.malformed.labels("frame", "bad_field")._value.get() == 1


def test_unknown_cameras_and_bad_ids_are_4xx(serve: Serve) -> None:
    with serve().logged_in() as client:
        assert client.get("/api/cameras/nope/stream.mjpeg").status_code == 404
        reply = client.get("/api/cameras/bad%20id")
        assert reply.status_code == 400 and "camera id" in reply.json()["detail"]


def test_camera_status_from_the_registry_without_credentials(serve: Serve, redis_client: redis.Redis) -> None:
    register(redis_client, "gate", state="backoff", error="camera gate: open failed rtsp://u:hunter22@cam/x")
    register(redis_client)
    with serve().logged_in() as client:
        cameras = {c["camera"]: c for c in client.get("/api/cameras").json()}
    assert cameras[CAMERA]["up"] and cameras[CAMERA]["fps"] == 5.0
    assert not cameras["gate"]["up"] and cameras["gate"]["state"] == "backoff"
    assert "hunter22" not in cameras["gate"]["last_error"] and "open failed" in cameras["gate"]["last_error"]


def test_the_stream_limit_answers_503(serve: Serve, redis_client: redis.Redis) -> None:
    served = serve(max_streams=1, detections_wait_ms=0)
    register(redis_client)
    publish_frame(redis_client, 1)
    with served.logged_in() as client, client.stream("GET", f"/api/cameras/{CAMERA}/stream.mjpeg") as reply:
        stream = parts(reply)
        next(stream)
        refused = client.get(f"/api/cameras/{CAMERA}/stream.mjpeg")
        assert refused.status_code == 503 and refused.headers["retry-after"]
