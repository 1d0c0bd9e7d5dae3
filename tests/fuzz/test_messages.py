"""Stream entries and alert bodies of any shape decode to a message or raise ``SchemaError``.

Three kinds of input: arbitrary field dicts (bytes or str names and values), valid entries with one
field mutated (deleted, replaced by hostile text, renamed to bytes that are not UTF-8), and valid
JSON bodies with one member replaced by an arbitrary JSON value (huge numbers, wrong types, deep
nesting).
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.errors import SchemaError
from shared.schemas import AlertEvent, Detection, Detections, Frame
from tests.fuzz import FUZZ

FRAME = Frame("gate", 7, 1_700_000_000_000_000_000, 1234, 4, 2, "raw", bytes(4 * 2 * 3))
DETECTIONS = Detections(
    camera="gate", seq=7, ts_ns=1_700_000_000_000_000_000, width=640, height=480, model="yolo",
    objects=(Detection("pistol", 0, 0.9, (1.0, 2.0, 30.0, 40.0), 3, verify_score=0.8),
             Detection("knife", 1, 0.4, (5, 6, 7, 8))),
    timings_ms={"queue_wait": 1.5, "inference": 20.0, "total": 25.0},
)  # fmt: skip
OBJECT = {"label": "x", "class_id": 0, "score": 0.5, "box": [0, 0, 1, 1], "track_id": 2, "verify_score": 0.7}
EVENT = AlertEvent(
    event_id="0123456789abcdef0123", kind="started", rule="gun", severity="critical", camera="gate",
    label="pistol", score=0.9, box=(1.0, 2.0, 30.0, 40.0), box_norm=(0.0, 0.0, 0.05, 0.08),
    frame_width=640, frame_height=480, track_id=3, first_seen_ns=10, ts_ns=20, seq=7, snapshot=None,
)  # fmt: skip


def as_redis(fields: dict[str, Any]) -> dict[bytes, bytes]:
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in fields.items()}


DEEP = "[" * 50_000 + "]" * 50_000
hostile_text = st.sampled_from(
    ["", "1e400", "-1e400", "1" * 400, "9" * 5000, "NaN", "Infinity", "-0", "0x10", "1_000", "١٢", " 7",
     "7\n", "gate\n", "gate\r\n", "jpeg\x00", "null", "[]", "{}", '{"a":', DEEP, '{"a":' * 5000]
)  # fmt: skip
texts = st.one_of(hostile_text, st.text(max_size=40), st.integers().map(str))
values: st.SearchStrategy[bytes | str] = st.one_of(
    st.binary(max_size=64), texts, texts.map(lambda t: t.encode("utf-8", "surrogatepass"))
)
field_names = st.one_of(
    st.sampled_from(["v", "camera", "seq", "ts_ns", "pts_ms", "width", "height", "codec", "data", "model",
                     "objects", "timings_ms", "event"]),
    st.text(max_size=8),
)  # fmt: skip
names: st.SearchStrategy[bytes | str] = st.one_of(
    field_names, field_names.map(lambda n: n.encode("utf-8", "surrogatepass")), st.binary(max_size=8)
)
arbitrary_fields = st.dictionaries(names, values, max_size=12)

json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300, max_value=10**400),
        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10),
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@st.composite
def mutated_fields(draw: st.DrawFn, valid: dict[bytes, bytes]) -> dict[bytes | str, bytes | str]:
    """``valid`` with one field deleted, replaced, renamed to non-UTF-8 bytes, or added."""
    fields: dict[bytes | str, bytes | str] = dict(valid)
    name = draw(st.sampled_from(sorted(valid)))
    how = draw(st.sampled_from(["delete", "replace", "rename", "add", "as_str"]))
    if how == "delete":
        del fields[name]
    elif how == "replace":
        fields[name] = draw(values)
    elif how == "rename":
        fields[name + draw(st.sampled_from([b"\xff", b"\xc3(", b"\x80"]))] = fields.pop(name)
    elif how == "add":
        fields[draw(names)] = draw(values)
    else:
        fields[name.decode()] = fields.pop(name).decode("latin-1")
    return fields


@st.composite
def mutated_json(draw: st.DrawFn, valid: Any) -> str:
    """``valid`` (a JSON object or a list of them) with one member replaced or deleted, or its
    text cut short; 1e400 appears as the JSON text a sender would write."""
    body = json.loads(json.dumps(valid))
    target = body
    if isinstance(body, list) and body and draw(st.booleans()):
        target = body[draw(st.integers(0, len(body) - 1))]
    if isinstance(target, dict) and target:
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.integers(0, 4)) == 0:
            del target[key]
        else:
            target[key] = draw(json_values)
    else:
        body = draw(json_values)
    text = json.dumps(body).replace("Infinity", "1e400")
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


def decodes_or_schema_error(decode: Any, raw: Any, kind: type) -> None:
    try:
        message = decode(raw)
    except SchemaError as error:
        assert error.reason in ("missing_field", "bad_field", "version", "bad_codec", "bad_size")
        return
    assert isinstance(message, kind)


@FUZZ
@given(st.one_of(arbitrary_fields, mutated_fields(as_redis(FRAME.encode()))))
def test_frame_decode(fields: dict) -> None:
    decodes_or_schema_error(Frame.decode, fields, Frame)


@FUZZ
@given(
    st.one_of(
        arbitrary_fields,
        mutated_fields(as_redis(DETECTIONS.encode())),
        mutated_json([OBJECT]).map(lambda text: as_redis(DETECTIONS.encode()) | {b"objects": text.encode()}),
        mutated_json(dict(DETECTIONS.timings_ms)).map(
            lambda text: as_redis(DETECTIONS.encode()) | {b"timings_ms": text.encode()}
        ),
    )
)
def test_detections_decode(fields: dict) -> None:
    decodes_or_schema_error(Detections.decode, fields, Detections)


@FUZZ
@given(
    st.one_of(
        arbitrary_fields,
        mutated_fields(as_redis(EVENT.encode())),
        mutated_json(json.loads(EVENT.to_json())).map(lambda text: {b"v": b"2", b"event": text.encode()}),
    )
)
def test_alert_event_decode(fields: dict) -> None:
    decodes_or_schema_error(AlertEvent.decode, fields, AlertEvent)


@FUZZ
@given(st.one_of(mutated_json(json.loads(EVENT.to_json())), texts, st.binary(max_size=200), json_values))
def test_alert_event_from_json(body: str | bytes | Any) -> None:
    decodes_or_schema_error(AlertEvent.from_json, body, AlertEvent)
