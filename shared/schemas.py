"""Message contracts between services, and their encoding as Redis stream fields.

Every message carries ``v`` (schema version). Encoding is plain fields and JSON: never pickle.
Decoding validates everything and raises :class:`SchemaError` with a bounded ``reason``
(``missing_field``, ``bad_field``, ``version``, ``bad_codec``, ``bad_size``) that consumers count.
Stream fields come back from Redis as ``bytes`` keys and values; both str and bytes are accepted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from shared.errors import SchemaError

SCHEMA_VERSION = 1
CAMERA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_SIDE_PX = 16384
Codec = Literal["jpeg", "raw"]
Fields = Mapping[bytes | str, bytes | str]
Box = tuple[float, float, float, float]
"""x1, y1, x2, y2: in pixels of the source frame, or in 0-1 of its size where a name says ``norm``."""


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _normalise(fields: Fields) -> dict[str, bytes | str]:
    return {_text(key): value for key, value in fields.items()}


def _get(fields: dict[str, bytes | str], name: str) -> bytes | str:
    try:
        return fields[name]
    except KeyError:
        raise SchemaError("missing_field", name) from None


def _int(fields: dict[str, bytes | str], name: str, *, lo: int, hi: int) -> int:
    raw = _get(fields, name)
    try:
        value = int(_text(raw))
    except (ValueError, UnicodeDecodeError):
        raise SchemaError("bad_field", f"{name} is not an integer") from None
    if not lo <= value <= hi:
        raise SchemaError("bad_field", f"{name}={value} outside [{lo}, {hi}]")
    return value


def _str(fields: dict[str, bytes | str], name: str) -> str:
    try:
        return _text(_get(fields, name))
    except UnicodeDecodeError:
        raise SchemaError("bad_field", f"{name} is not UTF-8") from None


def _camera(fields: dict[str, bytes | str]) -> str:
    camera = _str(fields, "camera")
    if not CAMERA_ID.match(camera):
        raise SchemaError("bad_field", "camera id")
    return camera


def _json(fields: dict[str, bytes | str], name: str) -> Any:
    try:
        return json.loads(_get(fields, name))
    except (ValueError, UnicodeDecodeError):
        raise SchemaError("bad_field", f"{name} is not JSON") from None


def _check_version(fields: dict[str, bytes | str]) -> None:
    version = _int(fields, "v", lo=0, hi=1_000_000)
    if version != SCHEMA_VERSION:
        raise SchemaError("version", f"v={version}, this build reads v={SCHEMA_VERSION}")


_I64 = 2**63 - 1


@dataclass(frozen=True)
class Frame:
    """One sampled, encoded camera frame (an entry of ``vigil:frames:{camera}``).

    ``width``/``height`` are the encoded image's size (after ingest's resize), ``ts_ns`` the capture
    wall clock, ``pts_ms`` the stream's own time (monotonic across file loops). ``raw`` data is
    BGR uint8, row-major, ``height*width*3`` bytes.
    """

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
            "v": SCHEMA_VERSION,
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
        _check_version(fields)
        codec = _str(fields, "codec")
        if codec not in ("jpeg", "raw"):
            raise SchemaError("bad_codec", codec[:16])
        width = _int(fields, "width", lo=1, hi=MAX_SIDE_PX)
        height = _int(fields, "height", lo=1, hi=MAX_SIDE_PX)
        data = _get(fields, "data")
        if not isinstance(data, bytes) or not data:
            raise SchemaError("bad_field", "data is empty")
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
    the camera (``None`` before the tracker has confirmed it)."""

    label: str
    class_id: int
    score: float
    box: Box
    track_id: int | None = None

    @classmethod
    def from_dict(cls, obj: Any) -> Detection:
        try:
            box = tuple(float(v) for v in obj["box"])
            det = cls(
                label=str(obj["label"]),
                class_id=int(obj["class_id"]),
                score=float(obj["score"]),
                box=box,  # type: ignore[arg-type]  # length checked below
                track_id=None if obj.get("track_id") is None else int(obj["track_id"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise SchemaError("bad_field", "object") from None
        if len(box) != 4 or not all(math.isfinite(v) for v in (*box, det.score)):
            raise SchemaError("bad_field", "object box or score")
        return det


@dataclass(frozen=True)
class Detections:
    """The detector's result for one processed frame (an entry of ``vigil:detections``).

    ``timings_ms`` holds at least ``queue_wait``, ``inference`` and ``total``.
    """

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
            "v": SCHEMA_VERSION,
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
        _check_version(fields)
        objects = _json(fields, "objects")
        timings = _json(fields, "timings_ms")
        if not isinstance(objects, list) or not isinstance(timings, dict):
            raise SchemaError("bad_field", "objects or timings_ms")
        try:
            timings_ms = {str(k): float(v) for k, v in timings.items()}
        except (TypeError, ValueError):
            raise SchemaError("bad_field", "timings_ms") from None
        return cls(
            camera=_camera(fields),
            seq=_int(fields, "seq", lo=0, hi=_I64),
            ts_ns=_int(fields, "ts_ns", lo=0, hi=_I64),
            width=_int(fields, "width", lo=1, hi=MAX_SIDE_PX),
            height=_int(fields, "height", lo=1, hi=MAX_SIDE_PX),
            model=_str(fields, "model"),
            objects=tuple(Detection.from_dict(obj) for obj in objects),
            timings_ms=timings_ms,
        )


@dataclass(frozen=True)
class AlertEvent:
    """A rule firing for a track (``started``) or letting go of it (``ended``).

    ``event_id`` is deterministic (camera, track, rule, first frame), so a replay never alerts
    twice. ``box`` is in source-frame pixels, ``box_norm`` in 0-1 of the frame size.
    """

    event_id: str
    kind: Literal["started", "ended"]
    rule: str
    severity: str
    camera: str
    label: str
    score: float
    box: Box
    box_norm: Box
    track_id: int | None
    first_seen_ns: int
    ts_ns: int
    seq: int
    snapshot: str | None = None

    def to_json(self) -> str:
        return json.dumps({"v": SCHEMA_VERSION, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: bytes | str) -> AlertEvent:
        try:
            obj = json.loads(text)
            if obj.pop("v") != SCHEMA_VERSION:
                raise SchemaError("version", str(obj.get("v")))
            obj["box"] = tuple(float(v) for v in obj["box"])
            obj["box_norm"] = tuple(float(v) for v in obj["box_norm"])
            event = cls(**obj)
        except SchemaError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError):
            raise SchemaError("bad_field", "alert event") from None
        if event.kind not in ("started", "ended") or not CAMERA_ID.match(event.camera):
            raise SchemaError("bad_field", "kind or camera")
        return event

    def encode(self) -> dict[str, bytes | str | int]:
        return {"v": SCHEMA_VERSION, "event": self.to_json()}

    @classmethod
    def decode(cls, raw: Fields) -> AlertEvent:
        fields = _normalise(raw)
        _check_version(fields)
        return cls.from_json(_get(fields, "event"))
