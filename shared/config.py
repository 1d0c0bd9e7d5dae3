"""Typed configuration: one YAML file, ``VIGIL_*`` environment overrides, validated at start.

Config is data only: these models do no I/O and hold no runtime state (``load_config`` reads the
file). A bad value is refused with a :class:`ConfigError` naming the file, the field path
(``cameras[1].fps``) and, for an override, the environment variable.

Environment overrides name a field path with ``_`` between the parts, matched against the field
names themselves: ``VIGIL_REDIS_URL`` sets ``redis.url``, ``VIGIL_INGEST_LEASE_TTL_S`` sets
``ingest.lease_ttl_s``. ``VIGIL_CONFIG`` names the file.
Lists (``cameras``) come from the file only.
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.errors import ConfigError
from shared.logs import redact
from shared.schemas import CAMERA_ID

ENV_PREFIX = "VIGIL_"
ENV_NOT_CONFIG = {"VIGIL_CONFIG", "VIGIL_ALLOCATOR", "VIGIL_RUNTIME_TUNED"}
"""``VIGIL_*`` variables that are not field overrides: the config file, the process settings of
``vigil/runtime.py`` (``VIGIL_TEST_*`` are also left alone)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RedisConfig(_Section):
    url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="redis://, rediss:// (TLS) or unix:// URL with password and database if needed; "
        "redis+cluster:// or rediss+cluster://host:port,host:port for a Redis Cluster's seed nodes",
        pattern=r"^(rediss?|unix|rediss?\+cluster)://",
    )
    connect_timeout_s: float = Field(2.0, gt=0, le=60, description="TCP connect timeout")
    socket_timeout_s: float = Field(5.0, gt=0, le=300, description="Timeout of one command")


class LoggingConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Root log level")
    format: Literal["plain", "json"] = Field("plain", description="Human lines or JSON lines")


Polygon = tuple[tuple[float, float], ...]
"""[x, y] points in 0-1 of the frame (x to the right, y down)."""


def _check_polygon(what: str, polygon: Polygon) -> None:
    if len(polygon) < 3:
        raise ValueError(f"{what} needs at least 3 points")
    if not all(0 <= x <= 1 and 0 <= y <= 1 for x, y in polygon):
        raise ValueError(f"{what}: coordinates are fractions of the frame, 0 to 1")


class MotionConfig(_Section):
    """Motion gating (docs/detector.md#motion-gating): frames in which nothing moved skip the model,
    with a full inference at least every ``max_interval_s``. ``detector.motion`` is every camera's
    default; ``cameras[].motion`` overrides the fields it names for one camera."""

    enabled: bool = Field(True, description="Skip the model on frames without motion (False: infer all)")
    threshold: int = Field(
        30, ge=1, le=255, description="Least grey-level difference (0-255) from the background that is change"
    )
    min_area: float = Field(
        0.0005, ge=0, le=1, description="Least area of one region of change, a share of the frame"
    )
    frame_height: int = Field(
        90, ge=16, le=2160, description="Rows of the grey frame motion is found on (smaller: faster)"
    )
    background_alpha: float = Field(
        0.05, gt=0, le=1, description="Weight of each new frame in the running-average background"
    )
    max_interval_s: float = Field(
        2.0, gt=0, le=60, description="A full inference at least this often, motion or not (frame time)"
    )
    warmup_frames: int = Field(
        5, ge=1, le=1000,
        description="Frames always inferred when a camera starts, is gained, or resumes after a gap",
    )  # fmt: skip
    hold_s: float = Field(
        5.0, ge=0, le=3600, description="After a frame with detections, infer all frames this long (frame s)"
    )
    masks: tuple[Polygon, ...] = Field(
        (), description="Polygons, [x, y] in 0-1 of the frame, where change is ignored (a clock, trees)"
    )

    @field_validator("masks")
    @classmethod
    def _valid_masks(cls, masks: tuple[Polygon, ...]) -> tuple[Polygon, ...]:
        for index, polygon in enumerate(masks):
            _check_polygon(f"masks[{index}]", polygon)
        return masks


class CameraConfig(_Section):
    id: str = Field(description="Camera id: letters, digits, '_', '.', '-' (used in keys and labels)")
    url: str = Field(
        min_length=1,
        description="rtsp://, http(s):// (MJPEG, HLS), a file path, /dev/videoN or an index",
    )
    fps: float = Field(5.0, gt=0, le=120, description="Frames per second to publish (sampled by timestamp)")
    max_side: int | None = Field(
        640, ge=16, le=16384, description="Resize so the longer side is at most this (None: keep)"
    )
    codec: Literal["jpeg", "raw"] = Field("jpeg", description="How frames are encoded in Redis")
    jpeg_quality: int = Field(85, ge=1, le=100, description="JPEG quality when codec is jpeg")
    enabled: bool = Field(True, description="Disabled cameras are neither opened nor leased")
    loop: bool = Field(False, description="Files only: start again at the end (demos, soak tests)")
    realtime: bool = Field(True, description="Files only: pace reading to the clip's own frame rate")
    rtsp_transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP only: RTP over TCP or UDP")
    zones: dict[str, Polygon] = Field(
        default_factory=dict,
        description="Named polygons in this camera's view, [x, y] in 0-1 of the frame, for alert rules",
    )
    motion: MotionConfig | None = Field(
        None, description="Motion gating of this camera: the fields given override detector.motion"
    )

    @field_validator("zones")
    @classmethod
    def _valid_polygons(cls, zones: dict[str, Polygon]) -> dict:
        for name, polygon in zones.items():
            _check_polygon(f"zone {name!r}", polygon)
        return zones

    @field_validator("url", mode="before")
    @classmethod
    def _index_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        if not CAMERA_ID.fullmatch(value):
            raise ValueError("must match [A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
        return value

    @property
    def kind(self) -> Literal["rtsp", "http", "file", "webcam"]:
        lowered = self.url.lower()
        if lowered.startswith(("rtsp://", "rtsps://")):
            return "rtsp"
        if lowered.startswith(("http://", "https://")):
            return "http"
        if self.url.isdigit() or self.url.startswith("/dev/video"):
            return "webcam"
        return "file"

    @model_validator(mode="after")
    def _file_only_options(self) -> CameraConfig:
        if self.loop and self.kind != "file":
            raise ValueError("loop applies to file sources only")
        return self


class EndpointConfig(_Section):
    """What every long-running process has: the /metrics, /healthz, /readyz endpoint."""

    metrics_host: str = Field(
        "127.0.0.1",
        description="Address of the /metrics, /healthz, /readyz endpoint (0.0.0.0: every interface, for a "
        "Prometheus on another host or container)",
    )
    metrics_port: int | None = Field(
        9101, ge=0, le=65535, description="/metrics port (0: any free, None: off)"
    )


class ServiceConfig(EndpointConfig):
    """What every replicated service has: an identity, a metrics endpoint, camera leases."""

    instance: str | None = Field(None, description="Replica id in leases and the registry (default host:pid)")
    lease_ttl_s: float = Field(
        5.0, ge=0.5, le=300, description="Camera lease TTL: failover time after a crash"
    )

    @property
    def instance_id(self) -> str:
        return self.instance or f"{socket.gethostname()}:{os.getpid()}"


class IngestConfig(ServiceConfig):
    stream_maxlen: int = Field(100, ge=1, le=1_000_000, description="Approximate bound of each frame stream")
    open_timeout_s: float = Field(10.0, gt=0, le=300, description="FFmpeg open timeout")
    read_timeout_s: float = Field(5.0, gt=0, le=300, description="FFmpeg read timeout")
    stall_timeout_s: float = Field(10.0, gt=0, le=3600, description="No frame for this long: reopen")
    reconnect_base_s: float = Field(0.5, gt=0, le=60, description="First reconnect delay ceiling")
    reconnect_cap_s: float = Field(30.0, gt=0, le=3600, description="Largest reconnect delay")
    registry_interval_s: float = Field(1.0, gt=0, le=60, description="How often camera status is written")

    @model_validator(mode="after")
    def _cap_above_base(self) -> IngestConfig:
        if self.reconnect_cap_s < self.reconnect_base_s:
            raise ValueError("reconnect_cap_s must be >= reconnect_base_s")
        return self


class TrackerConfig(_Section):
    """The IoU tracker's knobs (``detector/tracking``). Ages and windows are seconds of frame time
    (the frames' ``ts_ns``), so they mean the same at 5 and at 25 fps. Score thresholds suit Vigil's
    own detector (docs/tracking.md)."""

    high_score: float = Field(0.5, gt=0, le=1, description="Detections at or above this update tracks")
    low_score: float = Field(0.1, ge=0, le=1, description="Second-stage detections: keep tracks alive only")
    min_hits: int = Field(2, ge=1, le=100, description="Hits within confirm_s before a track is confirmed")
    confirm_s: float = Field(0.5, gt=0, le=60, description="Window of the min_hits hits that confirm a track")
    tentative_age_s: float = Field(
        0.0, ge=0, le=60, description="A tentative track unseen for longer is dropped (0: at its first miss)"
    )
    max_age_s: float = Field(4.0, gt=0, le=3600, description="Seconds a lost track is kept before removal")
    match_iou: float = Field(0.25, gt=0, lt=1, description="Least IoU for a high-score detection and a track")
    low_match_iou: float = Field(0.5, gt=0, lt=1, description="Least IoU for a low-score detection (stage 2)")
    new_track_score: float = Field(0.6, gt=0, le=1, description="Least score to start a track")

    @model_validator(mode="before")
    @classmethod
    def _no_frame_counts(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "max_age" in data:
            raise ValueError(
                "max_age counted frames and is no longer read: set max_age_s, the seconds a lost track "
                "is kept (max_age / the camera's fps: 30 frames at 5 fps is max_age_s: 6)"
            )
        return data

    @model_validator(mode="after")
    def _ordered_scores(self) -> TrackerConfig:
        if not self.low_score <= self.high_score <= self.new_track_score:
            raise ValueError("need low_score <= high_score <= new_track_score")
        return self


class VerifierConfig(_Section):
    """The second-stage verifier (docs/verifier.md): a confirmed track's box, with some context, cut
    from the frame at its own size and re-scored by the localization model."""

    weights: str | None = Field(
        None, description="Localizer checkpoint (default: detector/weights/localizer-lite0.pt)"
    )
    min_score: float = Field(0.5, ge=0, le=1, description="Verify tracks whose detection scores this or more")
    margin: float = Field(
        0.15, ge=0, le=1, description="Context added on each side of the box, a share of its width and height"
    )
    every_s: float = Field(
        2.0, ge=0, le=3600, description="Verify a track again at most this often (frame time; 0: every frame)"
    )


class RegionsConfig(_Section):
    """Region inference (docs/detector.md#region-inference): besides the whole frame, the model looks
    at crops of the frame's own pixels, one model input square, around tracks and motion boxes."""

    enabled: bool = Field(False, description="Run the model on native-resolution crops as well")
    max_regions: int = Field(2, ge=0, le=16, description="Most crops per frame (each one more model pass)")
    min_frame_scale: float = Field(
        1.5, ge=1, le=100,
        description="Crops only for frames at least this many model inputs on their long side",
    )  # fmt: skip


class DetectorConfig(ServiceConfig):
    metrics_port: int | None = Field(
        9102, ge=0, le=65535, description="/metrics port (0: any free, None: off)"
    )
    weights: str | None = Field(None, description="Checkpoint file (default: the shipped pistol detector)")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto, cpu, cuda, cuda:N")
    engine: Literal["auto", "torch", "openvino", "onnxruntime"] = Field(
        "auto", description="What runs the network (docs/engines.md); auto: torch on a GPU, on the CPU the "
        "fastest installed engine, measured once per checkpoint and host",
    )
    precision: Literal["auto", "fp32", "int8"] = Field(
        "auto", description="int8: OpenVINO's gated INT8 model (vigil quantize); auto: int8 where one exists"
    )
    engine_cache_dir: str | None = Field(
        None, description="Folder of the exported models (default: $XDG_CACHE_HOME/vigil/engines)"
    )
    letterbox: Literal["rect", "square"] = Field(
        "rect", description="rect: pad frames to a multiple of the stride, not to a square (fewer pixels)"
    )
    max_batch: int = Field(8, ge=1, le=1024, description="A batch closes at this many frames ...")
    max_wait_ms: float = Field(20.0, ge=0, le=10_000, description="... or this long after its first frame")
    max_frame_age_s: float = Field(
        2.0, gt=0, le=3600, description="Older frames are skipped, not processed late"
    )
    max_clock_skew_s: float = Field(
        60.0, gt=0, le=86_400, description="Frames stamped further ahead of this host's clock are dropped"
    )
    score_thresh: float = Field(0.25, ge=0, le=1, description="Detections below this are not reported")
    nms_iou_thresh: float = Field(0.6, gt=0, le=1, description="Class-aware NMS IoU threshold")
    torch_threads: int | None = Field(
        None, ge=1, le=1024, description="CPU threads for inference (None: all)"
    )
    detections_maxlen: int = Field(
        2_000, ge=1, description="Approximate bound of each camera's detections stream (400 s at 5 fps)"
    )
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    verifier: VerifierConfig | None = Field(
        None, description="Re-score confirmed tracks with the localization model (None: off)"
    )
    motion: MotionConfig = Field(
        default_factory=MotionConfig, description="Motion gating: every camera's default (cameras[].motion)"
    )
    regions: RegionsConfig = Field(
        default_factory=RegionsConfig, description="Region inference: native crops around tracks and motion"
    )


class AlertRuleConfig(_Section):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Rule id (in events and metrics)"
    )
    labels: tuple[str, ...] = Field(min_length=1, description="Object labels the rule fires on")
    min_score: float = Field(0.5, ge=0, le=1, description="Least detection score that counts as a sighting")
    persistence_k: int = Field(3, ge=1, le=1000, description="Fire when the track is seen in k ...")
    persistence_n: int = Field(5, ge=1, le=1000, description="... of its last n frames")
    cameras: tuple[str, ...] = Field((), description="Cameras the rule applies to (empty: all)")
    zones: tuple[str, ...] = Field((), description="Zone names (see cameras[].zones); empty: the whole frame")
    zone_mode: Literal["bottom_center", "overlap"] = Field(
        "bottom_center", description="Inside a zone by the box's bottom-centre point, or by area overlap"
    )
    min_overlap: float = Field(0.3, gt=0, le=1, description="overlap mode: least share of the box inside")
    cooldown_s: float = Field(30.0, ge=0, le=86_400, description="No new 'started' per (rule, camera, track)")
    end_after_s: float = Field(3.0, gt=0, le=3600, description="A track unseen this long has 'ended'")
    severity: Literal["info", "warning", "critical"] = Field("critical", description="Carried in events")
    verify: bool = Field(False, description="Count only sightings the detector's verifier confirmed")
    verify_min_score: float = Field(
        0.5, ge=0, le=1, description="verify: least verify_score that confirms a sighting"
    )

    @model_validator(mode="after")
    def _k_of_n(self) -> AlertRuleConfig:
        if self.persistence_k > self.persistence_n:
            raise ValueError("persistence_k must be <= persistence_n")
        return self


class CurveConfig(_Section):
    server_secret_key_file: str = Field(description="ZeroMQ CURVE secret key file (zmq.auth format)")
    authorized_keys_dir: str = Field(description="Folder of the public key files of allowed subscribers")


class AlertsConfig(ServiceConfig):
    metrics_port: int | None = Field(
        9103, ge=0, le=65535, description="/metrics port (0: any free, None: off)"
    )
    publish_endpoint: str = Field("tcp://*:5556", description="ZeroMQ PUB bind address")
    send_hwm: int = Field(10_000, ge=1, description="Messages queued per slow subscriber before dropping")
    curve: CurveConfig | None = Field(None, description="Authenticate subscribers with ZeroMQ CURVE")
    history_maxlen: int = Field(100_000, ge=1, description="Approximate bound of the vigil:alerts stream")
    snapshots: Literal["redis", "off"] = Field("redis", description="Store the frame with the box drawn")
    snapshot_ttl_s: int = Field(86_400, ge=1, description="How long snapshots are kept")
    snapshot_max_per_camera: int = Field(
        200, ge=1, le=100_000, description="Snapshots kept per camera: saving one more deletes the oldest"
    )
    max_clock_skew_s: float = Field(
        60.0, gt=0, le=86_400, description="Detections stamped further ahead of this host's clock are dropped"
    )
    storm_max_started: int = Field(
        20, ge=1, le=100_000, description="Alert storm cap: 'started' events per camera per storm_window_s"
    )
    storm_window_s: float = Field(10.0, gt=0, le=3600, description="The alert storm cap's window")
    rules: tuple[AlertRuleConfig, ...] = Field(
        (AlertRuleConfig(name="gun", labels=("pistol",), min_score=0.6, persistence_k=3, persistence_n=5),),
        description="Alert rules (default: a pistol seen in 3 of 5 frames at score >= 0.6)",
    )

    @field_validator("rules")
    @classmethod
    def _unique_rule_names(cls, rules: tuple[AlertRuleConfig, ...]) -> tuple[AlertRuleConfig, ...]:
        names = [rule.name for rule in rules]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"rules[{index}].name {name!r} is used twice (event ids would collide)")
        return rules


SEVERITIES = ("info", "warning", "critical")
"""Alert severities, least first (``sinks.targets[].min_severity`` compares in this order)."""
SINK_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
LOOPBACK_HOSTS = {"127.0.0.1", "::1", "localhost"}


class SinkBaseConfig(_Section):
    """What every sink has: a name, filters, a rate limit and a retry policy (docs/sinks.md)."""

    name: str = Field(pattern=SINK_NAME, description="Sink id: its lease, cursor, dead letters and metrics")
    cameras: tuple[str, ...] = Field((), description="Deliver events of these cameras only (empty: all)")
    labels: tuple[str, ...] = Field((), description="... of these object labels only (empty: all)")
    rules: tuple[str, ...] = Field((), description="... of these rules only (empty: all)")
    min_severity: Literal["info", "warning", "critical"] = Field(
        "info", description="... of this severity or higher (info < warning < critical)"
    )
    kinds: tuple[Literal["started", "ended"], ...] = Field(
        ("started", "ended"), min_length=1, description="... of these kinds"
    )
    rate_per_s: float | None = Field(
        None, gt=0, le=10_000, description="Deliver at most this many events a second (None: no limit)"
    )
    rate_burst: int = Field(
        10, ge=1, le=100_000, description="Events delivered at once before rate_per_s holds"
    )
    max_age_s: float = Field(
        3600.0, gt=0, le=7 * 86_400,
        description="Retry a failing delivery until the event is this old, then dead-letter it",
    )  # fmt: skip
    retry_base_s: float = Field(0.5, gt=0, le=60, description="First retry delay ceiling (full jitter)")
    retry_cap_s: float = Field(60.0, gt=0, le=3600, description="Largest retry delay")
    start_from: Literal["now", "oldest"] = Field(
        "now", description="A new sink's first event: the next one recorded, or the oldest in the history"
    )
    dead_maxlen: int = Field(10_000, ge=1, le=1_000_000, description="Approximate bound of its dead letters")

    @model_validator(mode="after")
    def _cap_above_base(self) -> SinkBaseConfig:
        if self.retry_cap_s < self.retry_base_s:
            raise ValueError("retry_cap_s must be >= retry_base_s")
        return self


def _one_secret(value: SecretStr | None, file: str | None, field: str, *, required: bool) -> None:
    if value is not None and file is not None:
        raise ValueError(f"give {field} or {field}_file, not both")
    if required and value is None and file is None:
        raise ValueError(f"{field} (or {field}_file) is required")
    if value is not None and not value.get_secret_value():
        raise ValueError(f"{field} is empty")


class WebhookSinkConfig(SinkBaseConfig):
    type: Literal["webhook"] = Field(description="POST each event as signed JSON")
    url: str = Field(description="https:// endpoint (http:// to a loopback host, or with allow_http)")
    secret: SecretStr | None = Field(None, description="HMAC-SHA256 key of the X-Vigil-Signature header")
    secret_file: str | None = Field(None, description="A file holding the secret instead (read at start)")
    timeout_s: float = Field(5.0, gt=0, le=300, description="Connect and reply timeout of one POST")
    ca_file: str | None = Field(None, description="CA bundle for https (default: the system's)")
    allow_http: bool = Field(False, description="Allow http:// to a host that is not loopback (unencrypted)")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018  a bad port raises here
        except ValueError:
            raise ValueError("not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("no user or password in the URL: the signature authenticates Vigil")
        return url

    @model_validator(mode="after")
    def _secret_and_scheme(self) -> WebhookSinkConfig:
        _one_secret(self.secret, self.secret_file, "secret", required=True)
        host = urlsplit(self.url).hostname
        if urlsplit(self.url).scheme == "http" and host not in LOOPBACK_HOSTS and not self.allow_http:
            raise ValueError("url: http:// sends events unencrypted; use https:// (or set allow_http)")
        return self


class MqttTlsConfig(_Section):
    ca_file: str | None = Field(
        None, description="CA bundle that signed the broker's certificate (None: the system's)"
    )
    cert_file: str | None = Field(None, description="Client certificate, for brokers that ask for one")
    key_file: str | None = Field(None, description="The client certificate's key")


class MqttSinkConfig(SinkBaseConfig):
    type: Literal["mqtt"] = Field(description="Publish events, snapshots and Home Assistant discovery")
    host: str = Field(min_length=1, description="Broker host name or address")
    port: int | None = Field(None, ge=1, le=65535, description="Broker port (None: 1883, or 8883 with tls)")
    client_id: str | None = Field(None, max_length=128, description="MQTT client id (None: vigil-<name>)")
    username: str | None = Field(None, min_length=1, description="Broker user name")
    password: SecretStr | None = Field(None, description="Broker password (needs username)")
    password_file: str | None = Field(None, description="A file holding the password instead (read at start)")
    tls: MqttTlsConfig | None = Field(None, description="Connect over TLS (None: plain TCP)")
    topic_prefix: str = Field("vigil", pattern=r"^[^#+]+$", description="First level of every Vigil topic")
    discovery: bool = Field(
        True, description="Publish Home Assistant MQTT discovery (a binary sensor per camera and rule)"
    )
    discovery_prefix: str = Field(
        "homeassistant", pattern=r"^[^#+]+$", description="Home Assistant's discovery prefix"
    )
    snapshots: bool = Field(
        True, description="Publish the JPEG of a started event on <prefix>/<camera>/<label>/snapshot"
    )
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive")
    ack_timeout_s: float = Field(
        10.0, gt=0, le=300, description="Wait this long for the broker's PUBACKs, then retry"
    )

    @model_validator(mode="after")
    def _password_needs_user(self) -> MqttSinkConfig:
        _one_secret(self.password, self.password_file, "password", required=False)
        if (self.password or self.password_file) and not self.username:
            raise ValueError("password needs username")
        return self

    @property
    def broker_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)


SinkConfig = Annotated[WebhookSinkConfig | MqttSinkConfig, Field(discriminator="type")]


class SinksConfig(ServiceConfig):
    metrics_port: int | None = Field(
        9104, ge=0, le=65535, description="/metrics port (0: any free, None: off)"
    )
    targets: tuple[SinkConfig, ...] = Field(
        (), description="Where alert events are delivered (docs/sinks.md)"
    )

    @field_validator("targets")
    @classmethod
    def _unique_names(cls, targets: tuple[SinkConfig, ...]) -> tuple[SinkConfig, ...]:
        names = [target.name for target in targets]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"targets[{index}].name {name!r} is used twice")
        return targets


class RetentionConfig(_Section):
    """How long clips are kept (docs/recorder.md#retention): the oldest go first."""

    max_age_days: float = Field(
        30.0, gt=0, le=36_500, description="Events older than this are deleted: row, clip and snapshot"
    )
    max_bytes_per_camera: int = Field(
        10 * 2**30, ge=2**20, description="Bytes of clips and snapshots kept per camera (the oldest go first)"
    )
    min_free_bytes: int = Field(
        512 * 2**20, ge=0,
        description="Free space under clips_dir below this: the owned cameras' oldest clips are deleted",
    )  # fmt: skip
    interval_s: float = Field(60.0, gt=0, le=86_400, description="How often retention runs")


class RecordConfig(ServiceConfig):
    """``vigil record``: an H.264 clip and a snapshot per alert, in an event store (docs/recorder.md)."""

    metrics_port: int | None = Field(
        9105, ge=0, le=65535, description="/metrics port (0: any free, None: off)"
    )
    store_url: str = Field(
        "sqlite:///vigil-data/events.db",
        description="Event store: sqlite:///path (a file, WAL) or postgresql://user:pass@host/db",
        pattern=r"^(sqlite|postgres|postgresql)(\+\w+)?://",
    )
    upgrade_db: bool = Field(True, description="Migrate the store schema at start (False: refuse an old one)")
    clips_dir: str = Field("vigil-data/clips", min_length=1, description="Folder of the clips and snapshots")
    pre_s: float = Field(
        5.0, ge=0, le=120,
        description="Seconds of video before the alert (kept in the frames stream: raises its bound)",
    )  # fmt: skip
    post_s: float = Field(5.0, ge=0, le=600, description="Seconds of video after the alert ended")
    max_clip_s: float = Field(120.0, gt=0, le=3600, description="Longest clip (an alert that does not end)")
    alert_lag_s: float = Field(
        5.0, ge=0, le=120,
        description="Frames kept beyond pre_s for the time an alert takes to reach the recorder",
    )  # fmt: skip
    draw_boxes: bool = Field(True, description="Draw the detections (boxes, labels, track ids) on the clip")
    crf: int = Field(26, ge=0, le=51, description="libx264 constant rate factor (lower: better, bigger)")
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = Field(
        "veryfast", description="libx264 preset (faster: less CPU, bigger files)"
    )
    retention: RetentionConfig = Field(default_factory=RetentionConfig)

    @model_validator(mode="after")
    def _clip_longer_than_lead(self) -> RecordConfig:
        if self.max_clip_s <= self.pre_s:
            raise ValueError("max_clip_s must be above pre_s (the clip would end before the alert)")
        return self

class WebConfig(EndpointConfig):
    """The operator console, ``vigil web`` (docs/web.md): its listener, its login and the live views."""

    host: str = Field(
        "127.0.0.1", min_length=1,
        description="Address the console listens on; on any other than loopback it refuses to start "
        "without a login (password_hash or API tokens)",
    )  # fmt: skip
    port: int = Field(8080, ge=0, le=65535, description="Console port (0: any free)")
    metrics_port: int | None = Field(
        9106, ge=0, le=65535, description="/metrics port (0: any free, None: off)"
    )
    user: str = Field("admin", pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="The login's user name")
    password_hash: SecretStr | None = Field(
        None, description="scrypt hash of the login's password (`vigil web --set-password` prints one)"
    )
    password_hash_file: str | None = Field(
        None, description="A file holding the hash instead (`vigil web --set-password --write FILE`)"
    )
    session_secret_file: str | None = Field(
        None, description="Key that signs session cookies, shared by replicas (None: random at each start, "
        "so a restart logs everyone out)",
    )  # fmt: skip
    session_ttl_s: int = Field(12 * 3600, ge=60, le=30 * 86_400, description="A login lasts this long")
    cookie_secure: bool = Field(
        False, description="Mark the session cookie Secure (set it when the console is served over https)"
    )
    api_tokens_file: str | None = Field(
        None, description="Integrators' API tokens, hashed (`vigil web --add-token NAME` adds one)"
    )
    login_attempts: int = Field(
        5, ge=1, le=1000, description="Failed logins allowed per client address per login_window_s"
    )
    login_window_s: float = Field(60.0, gt=0, le=86_400, description="The login rate limit's window")
    replay_events: int = Field(
        50, ge=0, le=1000, description="Alerts replayed from vigil:alerts to a live feed as it connects"
    )
    detections_wait_ms: float = Field(
        250.0, ge=0, le=10_000,
        description="Hold a frame this long for its detections; then show it without boxes (no motion, "
        "or the detector is behind)",
    )  # fmt: skip
    jpeg_quality: int = Field(80, ge=1, le=100, description="JPEG quality of frames with boxes drawn")
    max_streams: int = Field(
        64, ge=1, le=10_000, description="Live streams served at once (beyond: 503, try again)"
    )

    @model_validator(mode="after")
    def _one_password_source(self) -> WebConfig:
        _one_secret(self.password_hash, self.password_hash_file, "password_hash", required=False)
        return self


class VigilConfig(_Section):
    redis: RedisConfig = Field(default_factory=RedisConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    record: RecordConfig = Field(default_factory=RecordConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    cameras: tuple[CameraConfig, ...] = Field(default=(), description="Cameras to ingest")

    @model_validator(mode="after")
    def _verify_needs_a_verifier(self) -> VigilConfig:
        """A rule that counts only verified sightings would never fire without the verifier."""
        for index, rule in enumerate(self.alerts.rules):
            if rule.verify and self.detector.verifier is None:
                raise ValueError(f"alerts.rules[{index}].verify needs detector.verifier")
        return self

    @model_validator(mode="after")
    def _rule_zones_exist(self) -> VigilConfig:
        """A rule naming zones that none of its cameras has would never fire: refuse it."""
        for index, rule in enumerate(self.alerts.rules):
            cameras = [c for c in self.cameras if not rule.cameras or c.id in rule.cameras]
            for camera_id in rule.cameras:
                if camera_id not in {c.id for c in self.cameras}:
                    raise ValueError(f"alerts.rules[{index}].cameras: no camera {camera_id!r}")
            for zone in rule.zones:
                if not any(zone in camera.zones for camera in cameras):
                    raise ValueError(
                        f"alerts.rules[{index}].zones: no camera of this rule has a zone {zone!r}"
                    )
        return self

    @model_validator(mode="after")
    def _gating_keeps_alerts_open(self) -> VigilConfig:
        """With motion gating a still gun is seen only at the periodic inferences, at most
        ``max_interval_s`` plus one frame apart: that must stay below ``end_after_s``, or its alert
        could end between two of them. Checked per configured camera (with its fps), else for the
        default (cameras from the registry)."""
        gated = [(f"cameras[{i}].motion", c.id, self.motion_for(c.id), c.fps)
                 for i, c in enumerate(self.cameras)]  # fmt: skip
        if not self.cameras:
            gated = [("detector.motion", None, self.detector.motion, None)]
        for where, camera_id, motion, fps in gated:
            if not motion.enabled:
                continue
            gap_s = motion.max_interval_s + (1 / fps if fps else 0.0)
            for index, rule in enumerate(self.alerts.rules):
                applies = camera_id is None or not rule.cameras or camera_id in rule.cameras
                if applies and gap_s >= rule.end_after_s:
                    plus = f" plus one frame at {fps:g} fps" if fps else ""
                    raise ValueError(
                        f"{where}: max_interval_s ({motion.max_interval_s:g} s){plus} must be below "
                        f"alerts.rules[{index}].end_after_s ({rule.end_after_s:g} s), or an alert on a "
                        "still object could end between two periodic inferences"
                    )
        return self

    def frames_maxlen(self, camera: CameraConfig) -> int:
        """The bound of ``camera``'s frames stream: ``ingest.stream_maxlen``, or more where the
        recorder needs ``record.pre_s`` + ``record.alert_lag_s`` seconds of frames still in it when an
        alert reaches it (``pre_s: 0``: no pre-roll, the plain bound)."""
        if self.record.pre_s == 0:
            return self.ingest.stream_maxlen
        needed = math.ceil((self.record.pre_s + self.record.alert_lag_s) * camera.fps)
        return max(self.ingest.stream_maxlen, needed)

    def motion_for(self, camera_id: str) -> MotionConfig:
        """The camera's motion gating: ``detector.motion`` with its ``cameras[].motion`` fields on top."""
        camera = next((c for c in self.cameras if c.id == camera_id), None)
        if camera is None or camera.motion is None:
            return self.detector.motion
        own = camera.motion.model_dump(exclude_unset=True)
        return MotionConfig.model_validate(self.detector.motion.model_dump() | own)

    @model_validator(mode="after")
    def _sink_filters_exist(self) -> VigilConfig:
        """A sink filtering on a rule (or a configured camera) that does not exist would stay silent."""
        rules, cameras = {r.name for r in self.alerts.rules}, {c.id for c in self.cameras}
        for index, target in enumerate(self.sinks.targets):
            for rule in target.rules:
                if rule not in rules:
                    raise ValueError(f"sinks.targets[{index}].rules: no alert rule {rule!r}")
            for camera in target.cameras if cameras else ():
                if camera not in cameras:
                    raise ValueError(f"sinks.targets[{index}].cameras: no camera {camera!r}")
        return self

    @field_validator("cameras")
    @classmethod
    def _unique_ids(cls, cameras: tuple[CameraConfig, ...]) -> tuple[CameraConfig, ...]:
        seen: set[str] = set()
        for index, camera in enumerate(cameras):
            if camera.id in seen:
                raise ValueError(f"cameras[{index}].id {camera.id!r} is used twice")
            seen.add(camera.id)
        return cameras


def _env_path(model: type[BaseModel], name: str) -> tuple[str, ...] | None:
    """Resolve ``INGEST_LEASE_TTL_S`` to ``("ingest", "lease_ttl_s")`` against the field names."""
    for field_name in sorted(model.model_fields, key=len, reverse=True):
        upper = field_name.upper()
        annotation = model.model_fields[field_name].annotation
        if name == upper:
            return (field_name,)
        if (
            name.startswith(upper + "_")
            and isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
        ):
            rest = _env_path(annotation, name[len(upper) + 1 :])
            if rest is not None:
                return (field_name, *rest)
    return None


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Write overrides into ``data``; returns which variable set which path."""
    origins: dict[tuple[str, ...], str] = {}
    for variable, value in sorted(env.items()):
        if not variable.startswith(ENV_PREFIX) or variable in ENV_NOT_CONFIG:
            continue
        if variable.startswith(ENV_PREFIX + "TEST_"):
            continue
        path = _env_path(VigilConfig, variable[len(ENV_PREFIX) :])
        if path is None:
            raise ConfigError(f"environment: {variable} names no configuration field")
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment: {variable}: {part} is not a section")
            node = child
        node[path[-1]] = value
        origins[path] = variable
    return origins


def _format_error(error: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for item in error["loc"]:
        parts.append(f"[{item}]" if isinstance(item, int) else ("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except ValueError:  # a path with a NUL byte
        raise ConfigError(f"{path!r}: not a usable file name") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {redact(str(error))}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    except (ValueError, TypeError, AttributeError) as error:
        # PyYAML's scalar constructors raise these: a 5000-digit int, a date in month 13, and
        # AttributeError for a "!!timestamp" tag on text that is not a date
        raise ConfigError(f"{path}: not valid YAML: a value cannot be read: {redact(str(error))}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> VigilConfig:
    """Load ``path`` (or ``$VIGIL_CONFIG``; none: defaults), apply ``VIGIL_*`` overrides."""
    env = os.environ if env is None else env
    path = path or env.get("VIGIL_CONFIG") or None
    source = str(path) if path else "defaults"
    data = _read_yaml(Path(path)) if path else {}
    origins = _apply_env(data, env)
    try:
        return VigilConfig.model_validate(data)
    except ValidationError as error:
        lines = []
        for item in error.errors(include_url=False, include_input=False):
            field = _format_error(item)
            variable = origins.get(tuple(str(p) for p in item["loc"]))
            where = f" (from {variable})" if variable else ""
            lines.append(f"{field}{where}: {item['msg']}")
        raise ConfigError(redact(f"{source}: invalid configuration: " + "; ".join(lines))) from None
