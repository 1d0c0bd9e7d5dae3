import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.errors import SchemaError
from shared.schemas import AlertEvent, Detection, Detections, Frame

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


def alert_event(**changes: object) -> AlertEvent:
    settings: dict = dict(
        event_id="abc", kind="started", rule="gun", severity="high", camera="lobby",
        label="pistol", score=0.9, box=(1.0, 2.0, 3.0, 4.0), box_norm=(0.1, 0.2, 0.3, 0.4),
        frame_width=640, frame_height=480, track_id=3, first_seen_ns=10, ts_ns=20, seq=5, snapshot=None,
    )  # fmt: skip
    return AlertEvent(**(settings | changes))


def test_alert_event_round_trip_and_version() -> None:
    event = alert_event()
    assert AlertEvent.from_json(event.to_json()) == event
    assert AlertEvent.decode(as_redis(event.encode())) == event
    body = json.loads(event.to_json())
    assert body["v"] == AlertEvent.VERSION
    assert (body["frame_width"], body["frame_height"]) == (640, 480)
    body["v"] = 99
    with pytest.raises(SchemaError):
        AlertEvent.from_json(json.dumps(body))
    with pytest.raises(SchemaError):
        AlertEvent.from_json(b"{broken")


def test_an_alert_event_of_the_old_version_is_refused_by_version() -> None:
    """v1 events had no frame size: they are refused as a version, not as a bad field."""
    body = json.loads(alert_event().to_json())
    del body["frame_width"], body["frame_height"]
    body["v"] = 1
    with pytest.raises(SchemaError) as caught:
        AlertEvent.from_json(json.dumps(body))
    assert caught.value.reason == "version"
    assert "v=1" in str(caught.value) and f"v={AlertEvent.VERSION}" in str(caught.value)
    with pytest.raises(SchemaError) as caught:
        AlertEvent.decode({b"v": b"1", b"event": json.dumps(body).encode()})
    assert caught.value.reason == "version"


def test_frames_and_detections_keep_their_version_across_the_alert_event_bump() -> None:
    """Versions are per message type: v1 frames and detections in Redis stay readable."""
    assert (Frame.VERSION, Detections.VERSION, AlertEvent.VERSION) == (1, 1, 2)
    frame = {b"v": b"1", b"camera": b"cam", b"seq": b"1", b"ts_ns": b"2", b"pts_ms": b"3",
             b"width": b"4", b"height": b"2", b"codec": b"jpeg", b"data": b"x"}  # fmt: skip
    assert Frame.decode(frame).camera == "cam"
    detections = as_redis(Detections("cam", 1, 2, 640, 480, "m").encode())
    assert detections[b"v"] == b"1" and Detections.decode(detections).width == 640


def test_verify_score_is_optional_and_keeps_detections_at_v1() -> None:
    """An optional object member: v1 readers ignore it, and entries written without it read as None."""
    verified = Detection("pistol", 0, 0.9, (1.0, 2.0, 3.0, 4.0), 5, verify_score=0.75)
    unverified = Detection("pistol", 0, 0.8, (1.0, 2.0, 3.0, 4.0))
    message = Detections("cam", 1, 2, 640, 480, "m", objects=(verified, unverified))
    fields = as_redis(message.encode())
    assert fields[b"v"] == b"1" and Detections.decode(fields) == message
    older = {"label": "pistol", "class_id": 0, "score": 0.9, "box": [1, 2, 3, 4], "track_id": 5}
    assert Detection.from_dict(older).verify_score is None


def reason(decode: object, *args: object) -> str:
    with pytest.raises(SchemaError) as caught:
        decode(*args)  # type: ignore[operator]
    return caught.value.reason


def test_field_names_that_are_not_utf8_are_a_schema_error() -> None:
    frame = as_redis(Frame("cam", 1, 2, 3, 4, 2, "jpeg", b"x").encode()) | {b"\xff\xfe": b"1"}
    assert reason(Frame.decode, frame) == "bad_field"
    detections = as_redis(Detections("cam", 1, 2, 64, 48, "m").encode()) | {b"\xc3(": b""}
    assert reason(Detections.decode, detections) == "bad_field"
    assert reason(AlertEvent.decode, as_redis(alert_event().encode()) | {b"\x80": b"x"}) == "bad_field"


@pytest.mark.parametrize(
    "obj",
    [
        {"label": "x", "class_id": 0, "score": 1e400, "box": [0, 0, 1, 1]},
        {"label": "x", "class_id": 0, "score": 0.5, "box": [0, 0, 1e400, 1]},
        {"label": "x", "class_id": 0, "score": 10**400, "box": [0, 0, 1, 1]},
        {"label": "x", "class_id": 10**400, "score": 0.5, "box": [0, 0, 1, 1]},
        {"label": "x", "class_id": 0, "score": 0.5, "box": [0, 0, 1, 1], "track_id": 10**400},
        {"label": "x", "class_id": 0, "score": 0.5, "box": [0, 0, 10**400, 1]},
        {"label": "x", "class_id": 1.5, "score": 0.5, "box": [0, 0, 1, 1]},
        {"label": "x", "class_id": True, "score": 0.5, "box": [0, 0, 1, 1]},
        {"label": 7, "class_id": 0, "score": 0.5, "box": [0, 0, 1, 1]},
        {"label": "x", "class_id": 0, "score": "0.5", "box": [0, 0, 1, 1]},
        {"label": "x", "class_id": 0, "score": 0.5, "box": "0011"},
        {"label": "x", "class_id": 0, "score": 0.5, "box": {"a": 1, "b": 2, "c": 3, "d": 4}},
        {"label": "x", "class_id": 0, "score": 0.5, "box": [0, 0, 1, 1], "track_id": "3"},
        {"label": "x", "class_id": 0, "score": 0.5, "box": [0, 0, 1, 1], "verify_score": "0.9"},
        {"label": "x", "class_id": 0, "score": 0.5, "box": [0, 0, 1, 1], "verify_score": 1e400},
        ["label", "x"],
        "x",
    ],
)
def test_overflowing_numbers_and_wrong_json_types_in_objects(obj: object) -> None:
    text = json.dumps([obj]).replace("Infinity", "1e400")  # 1e400 as the JSON text a sender wrote
    fields = as_redis(Detections("c", 1, 1, 10, 10, "m").encode()) | {b"objects": text.encode()}
    assert reason(Detections.decode, fields) == "bad_field"


@pytest.mark.parametrize(
    "timings", ['{"total": 1e400}', '{"total": "5"}', '{"total": null}', '{"total": [1]}', "[1, 2]", "7"]
)
def test_bad_timings_are_a_schema_error(timings: str) -> None:
    fields = as_redis(Detections("c", 1, 1, 10, 10, "m").encode()) | {b"timings_ms": timings.encode()}
    assert reason(Detections.decode, fields) == "bad_field"


@pytest.mark.parametrize("field", [b"seq", b"ts_ns", b"width", b"v"])
@pytest.mark.parametrize("value", [b"1" * 400, b"1e400", b"inf", b"1.0", b" 1", b"\xd9\xa1", "١".encode()])
def test_integer_fields_that_overflow_or_are_not_plain_digits(field: bytes, value: bytes) -> None:
    fields = as_redis(Frame("cam", 1, 2, 3, 4, 2, "jpeg", b"x").encode()) | {field: value}
    assert reason(Frame.decode, fields) == "bad_field"


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("field", [b"objects", b"timings_ms"])
def test_deeply_nested_json_in_detections_is_a_schema_error(field: bytes) -> None:
    fields = as_redis(Detections("c", 1, 1, 10, 10, "m").encode()) | {field: DEEP.encode()}
    assert reason(Detections.decode, fields) == "bad_field"


def test_deeply_nested_json_in_an_alert_event_is_a_schema_error() -> None:
    assert reason(AlertEvent.from_json, DEEP) == "bad_field"
    body = alert_event().to_json().replace('"box":[1.0,2.0,3.0,4.0]', '"box":' + DEEP)
    assert reason(AlertEvent.decode, {b"v": b"2", b"event": body.encode()}) == "bad_field"


@pytest.mark.parametrize(
    "change",
    [
        {"score": "0.9"}, {"score": None}, {"box": [1, 2, 3]}, {"box": "1234"}, {"box_norm": [0, 0, 2, 1]},
        {"frame_width": 0}, {"frame_width": 1.5}, {"frame_height": "480"}, {"frame_height": 10**400},
        {"track_id": "3"}, {"seq": -1}, {"ts_ns": 2**64}, {"first_seen_ns": True}, {"kind": "begun"},
        {"camera": "gate\n"}, {"camera": 5}, {"rule": ["gun"]}, {"snapshot": 3}, {"surprise": 1},
        {"v": "2"},
    ],
)  # fmt: skip
def test_wrong_json_types_in_an_alert_event_are_a_bad_field(change: dict) -> None:
    body = json.loads(alert_event().to_json()) | change
    assert reason(AlertEvent.from_json, json.dumps(body)) == "bad_field"


@pytest.mark.parametrize("missing", ["frame_width", "event_id", "v", "box"])
def test_a_missing_alert_event_member_is_a_missing_field(missing: str) -> None:
    body = json.loads(alert_event().to_json())
    del body[missing]
    assert reason(AlertEvent.from_json, json.dumps(body)) == "missing_field"


@pytest.mark.parametrize("camera", [b"gate\n", b"gate\r\n", b"\ngate", b"ga te", b"a" * 65])
def test_a_camera_id_must_match_in_full(camera: bytes) -> None:
    fields = as_redis(Frame("cam", 1, 2, 3, 4, 2, "jpeg", b"x").encode()) | {b"camera": camera}
    assert reason(Frame.decode, fields) == "bad_field"
    detections = as_redis(Detections("c", 1, 1, 10, 10, "m").encode()) | {b"camera": camera}
    assert reason(Detections.decode, detections) == "bad_field"
