import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import SchemaError
from shared.schemas import SCHEMA_VERSION, AlertEvent, Detection, Detections, Frame

camera_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,20}\Z")
coords = st.floats(min_value=0, max_value=4000, allow_nan=False)


def as_redis(fields: dict) -> dict[bytes, bytes]:
    """What XRANGE returns: bytes keys and values."""
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


@given(
    camera=camera_ids,
    seq=st.integers(0, 2**62),
    ts_ns=st.integers(0, 2**62),
    pts_ms=st.integers(-(2**40), 2**40),
    data=st.binary(min_size=1, max_size=64),
)
def test_jpeg_frame_round_trip(camera: str, seq: int, ts_ns: int, pts_ms: int, data: bytes) -> None:
    frame = Frame(camera, seq, ts_ns, pts_ms, 640, 480, "jpeg", data)
    assert Frame.decode(as_redis(frame.encode())) == frame


def test_raw_frame_size_is_checked() -> None:
    frame = Frame("cam", 1, 2, 3, 4, 2, "raw", bytes(4 * 2 * 3))
    assert Frame.decode(as_redis(frame.encode())) == frame
    fields = as_redis(frame.encode()) | {b"data": bytes(5)}
    with pytest.raises(SchemaError) as caught:
        Frame.decode(fields)
    assert caught.value.reason == "bad_size"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({b"seq": None}, "missing_field"),
        ({b"seq": b"abc"}, "bad_field"),
        ({b"width": b"0"}, "bad_field"),
        ({b"height": b"100000"}, "bad_field"),
        ({b"camera": b"../etc"}, "bad_field"),
        ({b"codec": b"h264"}, "bad_codec"),
        ({b"v": b"2"}, "version"),
        ({b"v": None}, "missing_field"),
        ({b"data": b""}, "bad_field"),
        ({b"camera": b"\xff\xfe"}, "bad_field"),
    ],
)
def test_malformed_frames_raise_schema_error(change: dict, reason: str) -> None:
    fields = as_redis(Frame("cam", 1, 2, 3, 4, 2, "jpeg", b"x").encode())
    for key, value in change.items():
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    with pytest.raises(SchemaError) as caught:
        Frame.decode(fields)
    assert caught.value.reason == reason


@given(
    boxes=st.lists(st.tuples(coords, coords, coords, coords), max_size=5),
    scores=st.floats(0, 1),
)
def test_detections_round_trip(boxes: list, scores: float) -> None:
    objects = tuple(
        Detection(label="pistol", class_id=0, score=scores, box=box, track_id=i or None)
        for i, box in enumerate(boxes)
    )
    message = Detections(
        camera="cam-1", seq=7, ts_ns=123, width=640, height=480, model="yolo",
        objects=objects, timings_ms={"queue_wait": 1.5, "inference": 20.0, "total": 25.0},
    )  # fmt: skip
    assert Detections.decode(as_redis(message.encode())) == message


@pytest.mark.parametrize(
    "objects",
    ["not json", json.dumps({"a": 1}), json.dumps([{"label": "x"}]), json.dumps([{
        "label": "x", "class_id": 0, "score": "nan", "box": [0, 0, 1, 1]}]),
     json.dumps([{"label": "x", "class_id": 0, "score": 1, "box": [0, 0, 1]}])],
)  # fmt: skip
def test_malformed_detections(objects: str) -> None:
    fields = as_redis(Detections("c", 1, 1, 10, 10, "m").encode()) | {b"objects": objects.encode()}
    with pytest.raises(SchemaError):
        Detections.decode(fields)


def test_alert_event_round_trip_and_version() -> None:
    event = AlertEvent(
        event_id="abc", kind="started", rule="gun", severity="high", camera="lobby",
        label="pistol", score=0.9, box=(1.0, 2.0, 3.0, 4.0), box_norm=(0.1, 0.2, 0.3, 0.4),
        track_id=3, first_seen_ns=10, ts_ns=20, seq=5, snapshot=None,
    )  # fmt: skip
    assert AlertEvent.from_json(event.to_json()) == event
    assert AlertEvent.decode(as_redis(event.encode())) == event
    body = json.loads(event.to_json())
    assert body["v"] == SCHEMA_VERSION
    body["v"] = 99
    with pytest.raises(SchemaError):
        AlertEvent.from_json(json.dumps(body))
    with pytest.raises(SchemaError):
        AlertEvent.from_json(b"{broken")
