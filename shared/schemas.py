"""Message contracts between services, and their encoding as Redis stream fields.

Every message carries ``v``, the version of its own type (``Frame.VERSION``,
``Detections.VERSION``, ``AlertEvent.VERSION``): a type's version changes only when that type
does in a way its readers cannot step over (a new optional member of a ``Detections`` object, which
readers ignore, is not such a change; a new ``AlertEvent`` member, which readers refuse, is).
Encoding is plain fields and JSON: never pickle. Decoding validates everything and raises
:class:`SchemaError`, and nothing else, with a bounded ``reason`` (``missing_field``,
``bad_field``, ``version``, ``bad_codec``, ``bad_size``) that consumers count: whatever the bytes
(names that are not UTF-8, numbers that overflow, JSON nested too deep, wrong JSON types).
Stream fields come back from Redis as ``bytes`` keys and values; both str and bytes are accepted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Any, ClassVar, Literal

from shared.errors import SchemaError

CAMERA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A camera id: check it with ``CAMERA_ID.fullmatch`` (``match`` with ``$`` lets a trailing newline in)."""
MAX_SIDE_PX = 16384
Codec = Literal["jpeg", "raw"]
Fields = Mapping[bytes | str, bytes | str]
Box = tuple[float, float, float, float]
"""x1, y1, x2, y2: in pixels of the source frame, or in 0-1 of its size where a name says ``norm``."""

_I64 = 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")
"""A stream field holding an integer: ASCII digits, at most 19 of them (any int64)."""

# -- stream fields -------------------------------------------------------------------------------


def _text(value: object, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise SchemaError("bad_field", f"{what} is not UTF-8") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # what Redis stores for an int; encode() gives ints
    raise SchemaError("bad_field", f"{what} is not text")


def _normalise(raw: Fields) -> dict[str, bytes | str]:
    return {_text(key, "a field name"): value for key, value in raw.items()}


def _get(fields: dict[str, bytes | str], name: str) -> bytes | str:
    try:
        return fields[name]
    except KeyError:
        raise SchemaError("missing_field", name) from None


def _int(fields: dict[str, bytes | str], name: str, *, lo: int, hi: int) -> int:
    text = _text(_get(fields, name), name)
    if not _INTEGER.fullmatch(text):
        raise SchemaError("bad_field", f"{name} is not an integer")
    value = int(text)
    if not lo <= value <= hi:
        raise SchemaError("bad_field", f"{name}={value} outside [{lo}, {hi}]")
    return value


def _str(fields: dict[str, bytes | str], name: str) -> str:
    return _text(_get(fields, name), name)


def _camera(fields: dict[str, bytes | str]) -> str:
    return _camera_id(_str(fields, "camera"))


def _camera_id(camera: object) -> str:
    if not isinstance(camera, str) or not CAMERA_ID.fullmatch(camera):
        raise SchemaError("bad_field", "camera id")
    return camera


def _loads(text: object, what: str) -> Any:
    """Parse JSON; too deep a nesting (RecursionError) is malformed like any other bad text."""
    try:
        return json.loads(text)  # type: ignore[arg-type]  # a wrong type raises TypeError
    except (ValueError, TypeError, RecursionError):
        raise SchemaError("bad_field", f"{what} is not JSON") from None


def _json(fields: dict[str, bytes | str], name: str) -> Any:
    return _loads(_str(fields, name), name)


def _check_version(fields: dict[str, bytes | str], expected: int, message: str) -> None:
    _version(_int(fields, "v", lo=0, hi=1_000_000), expected, message)


def _version(version: int, expected: int, message: str) -> None:
    if version != expected:
        raise SchemaError("version", f"{message} v={version}, this build reads v={expected}")


# -- JSON values: exact types, nothing coerced ------------------------------------------------------


def _member(obj: Mapping[str, Any], name: str, what: str) -> Any:
    try:
        return obj[name]
    except KeyError:
        raise SchemaError("missing_field", f"{what}.{name}") from None


def _number(value: object, what: str) -> float:
    """A finite JSON number (an int or a float, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SchemaError("bad_field", f"{what} is not a number")
    try:
        number = float(value)
    except OverflowError:  # an int beyond a double: 10**400
        number = math.inf
    if not math.isfinite(number):
        raise SchemaError("bad_field", f"{what} is not finite")
    return number


def _whole(value: object, what: str, *, lo: int, hi: int) -> int:
    """A JSON integer within [lo, hi] (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError("bad_field", f"{what} is not an integer")
    if not lo <= value <= hi:
        raise SchemaError("bad_field", f"{what} outside [{lo}, {hi}]")
    return value


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise SchemaError("bad_field", f"{what} is not a string")
    return value


def _box(value: object, what: str) -> Box:
    if not isinstance(value, list) or len(value) != 4:
        raise SchemaError("bad_field", f"{what} is not 4 numbers")
    x1, y1, x2, y2 = (_number(v, what) for v in value)
    return (x1, y1, x2, y2)


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError("bad_field", f"{what} is not a JSON object")
    return value


@dataclass(frozen=True)
class Frame:
    """One sampled, encoded camera frame (an entry of ``vigil:frames:{camera}``).

    ``width``/``height`` are the encoded image's size (after ingest's resize), ``ts_ns`` the capture
    wall clock, ``pts_ms`` the stream's own time (monotonic across file loops). ``raw`` data is
    BGR uint8, row-major, ``height*width*3`` bytes.
    """

    VERSION: ClassVar[int] = 1

    camera: str
    seq: int
    ts_ns: int
    pts_ms: int
    width: int
    height: int
    codec: Codec
    data: bytes

    def encode(self) -> dict[str, bytes | str | int]:
        return {
            "v": self.VERSION,
            "camera": self.camera,
            "seq": self.seq,
            "ts_ns": self.ts_ns,
            "pts_ms": self.pts_ms,
            "width": self.width,
            "height": self.height,
            "codec": self.codec,
            "data": self.data,
        }

    @classmethod
    def decode(cls, raw: Fields) -> Frame:
        fields = _normalise(raw)
        _check_version(fields, cls.VERSION, "frame")
        codec = _str(fields, "codec")
        if codec not in ("jpeg", "raw"):
            raise SchemaError("bad_codec", codec[:16])
        width = _int(fields, "width", lo=1, hi=MAX_SIDE_PX)
        height = _int(fields, "height", lo=1, hi=MAX_SIDE_PX)
        data = _get(fields, "data")
        if not isinstance(data, bytes) or not data:
            raise SchemaError("bad_field", "data is not bytes, or empty")
        if codec == "raw" and len(data) != width * height * 3:
            raise SchemaError("bad_size", f"{len(data)} bytes for {width}x{height}x3")
        return cls(
            camera=_camera(fields),
            seq=_int(fields, "seq", lo=0, hi=_I64),
            ts_ns=_int(fields, "ts_ns", lo=0, hi=_I64),
            pts_ms=_int(fields, "pts_ms", lo=-_I64, hi=_I64),
            width=width,
            height=height,
            codec=codec,  # type: ignore[arg-type]  # checked above
            data=data,
        )


@dataclass(frozen=True)
class Detection:
    """One object in a frame. ``box`` is xyxy in source-frame pixels; ``track_id`` is scoped to
    the camera (``None`` before the tracker has confirmed it); ``verify_score`` is the second-stage
    verifier's latest score of the track (``None``: not verified, or no verifier)."""

    label: str
    class_id: int
    score: float
    box: Box
    track_id: int | None = None
    verify_score: float | None = None

    @classmethod
    def from_dict(cls, obj: Any) -> Detection:
        """One element of a ``Detections`` message's ``objects`` (parsed JSON); other keys are ignored,
        and the optional ones (``track_id``, ``verify_score``) may be missing or null."""
        obj = _object(obj, "object")
        track_id, verify_score = obj.get("track_id"), obj.get("verify_score")
        return cls(
            label=_string(_member(obj, "label", "object"), "object label"),
            class_id=_whole(_member(obj, "class_id", "object"), "object class_id", lo=0, hi=_I64),
            score=_number(_member(obj, "score", "object"), "object score"),
            box=_box(_member(obj, "box", "object"), "object box"),
            track_id=None if track_id is None else _whole(track_id, "object track_id", lo=0, hi=_I64),
            verify_score=None if verify_score is None else _number(verify_score, "object verify_score"),
        )


@dataclass(frozen=True)
class Detections:
    """The detector's result for one processed frame (an entry of ``vigil:detections``).

    ``timings_ms`` holds at least ``queue_wait``, ``inference`` and ``total``.
    """

    VERSION: ClassVar[int] = 1
    """Still 1 with ``Detection.verify_score``: an optional object member, which readers of v1 ignore
    and this build reads as null when it is missing, changes no version (docs/contracts.md)."""

    camera: str
    seq: int
    ts_ns: int
    width: int
    height: int
    model: str
    objects: tuple[Detection, ...] = ()
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    def encode(self) -> dict[str, bytes | str | int]:
        return {
            "v": self.VERSION,
            "camera": self.camera,
            "seq": self.seq,
            "ts_ns": self.ts_ns,
            "width": self.width,
            "height": self.height,
            "model": self.model,
            "objects": json.dumps([asdict(obj) for obj in self.objects], separators=(",", ":")),
            "timings_ms": json.dumps(dict(self.timings_ms), separators=(",", ":")),
        }

    @classmethod
    def decode(cls, raw: Fields) -> Detections:
        fields = _normalise(raw)
        _check_version(fields, cls.VERSION, "detections")
        objects = _json(fields, "objects")
        if not isinstance(objects, list):
            raise SchemaError("bad_field", "objects is not a JSON list")
        timings = _object(_json(fields, "timings_ms"), "timings_ms")
        return cls(
            camera=_camera(fields),
            seq=_int(fields, "seq", lo=0, hi=_I64),
            ts_ns=_int(fields, "ts_ns", lo=0, hi=_I64),
            width=_int(fields, "width", lo=1, hi=MAX_SIDE_PX),
            height=_int(fields, "height", lo=1, hi=MAX_SIDE_PX),
            model=_str(fields, "model"),
            objects=tuple(Detection.from_dict(obj) for obj in objects),
            timings_ms={name: _number(value, "timings_ms value") for name, value in timings.items()},
        )


@dataclass(frozen=True)
class AlertEvent:
    """A rule firing for a track (``started``) or letting go of it (``ended``).

    ``event_id`` is deterministic (camera, track, rule, first frame), so a replay never alerts
    twice. ``box`` is in pixels of the frame the detector saw, which was ``frame_width`` ×
    ``frame_height`` (the ``Detections`` message's size); ``box_norm`` is in 0-1 of that size.
    """

    VERSION: ClassVar[int] = 2
    """v2 added ``frame_width`` and ``frame_height``; a v1 event is refused (``version``)."""

    event_id: str
    kind: Literal["started", "ended"]
    rule: str
    severity: str
    camera: str
    label: str
    score: float
    box: Box
    box_norm: Box
    frame_width: int
    frame_height: int
    track_id: int | None
    first_seen_ns: int
    ts_ns: int
    seq: int
    snapshot: str | None = None

    def to_json(self) -> str:
        return json.dumps({"v": self.VERSION, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: bytes | str) -> AlertEvent:
        obj = _object(_loads(text, "alert event"), "alert event")
        version = _whole(_member(obj, "v", "event"), "event.v", lo=0, hi=1_000_000)
        _version(version, cls.VERSION, "alert event")
        if obj.keys() - {f.name for f in dataclass_fields(cls)} - {"v"}:
            raise SchemaError("bad_field", "alert event has unknown fields")

        def get(name: str) -> Any:
            return _member(obj, name, "event")

        kind = get("kind")
        if kind not in ("started", "ended"):
            raise SchemaError("bad_field", "event.kind")
        box_norm = _box(get("box_norm"), "event.box_norm")
        if not all(0.0 <= v <= 1.0 for v in box_norm):
            raise SchemaError("bad_field", "event.box_norm outside 0-1")
        track_id, snapshot = get("track_id"), obj.get("snapshot")
        return cls(
            event_id=_string(get("event_id"), "event.event_id"),
            kind=kind,
            rule=_string(get("rule"), "event.rule"),
            severity=_string(get("severity"), "event.severity"),
            camera=_camera_id(get("camera")),
            label=_string(get("label"), "event.label"),
            score=_number(get("score"), "event.score"),
            box=_box(get("box"), "event.box"),
            box_norm=box_norm,
            frame_width=_whole(get("frame_width"), "event.frame_width", lo=1, hi=MAX_SIDE_PX),
            frame_height=_whole(get("frame_height"), "event.frame_height", lo=1, hi=MAX_SIDE_PX),
            track_id=None if track_id is None else _whole(track_id, "event.track_id", lo=0, hi=_I64),
            first_seen_ns=_whole(get("first_seen_ns"), "event.first_seen_ns", lo=0, hi=_I64),
            ts_ns=_whole(get("ts_ns"), "event.ts_ns", lo=0, hi=_I64),
            seq=_whole(get("seq"), "event.seq", lo=0, hi=_I64),
            snapshot=None if snapshot is None else _string(snapshot, "event.snapshot"),
        )

    def encode(self) -> dict[str, bytes | str | int]:
        return {"v": self.VERSION, "event": self.to_json()}

    @classmethod
    def decode(cls, raw: Fields) -> AlertEvent:
        fields = _normalise(raw)
        _check_version(fields, cls.VERSION, "alert event")
        return cls.from_json(_str(fields, "event"))
