from pathlib import Path

import pytest
import yaml

from shared.config import load_config
from shared.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vigil.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(env={})
    assert config.redis.url == "redis://127.0.0.1:6379/0"
    assert config.cameras == ()
    assert config.ingest.lease_ttl_s == 5.0


def test_file_with_cameras(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
redis: {url: "redis://127.0.0.1:6379/3"}
ingest: {stream_maxlen: 50}
cameras:
  - {id: lobby, url: "rtsp://cam/stream", fps: 2, rtsp_transport: udp}
  - {id: desk, url: 0}
  - {id: demo, url: samples/pistols.mp4, loop: true, codec: raw}
""",
    )
    config = load_config(path, env={})
    lobby, desk, demo = config.cameras
    assert (lobby.kind, lobby.fps, lobby.rtsp_transport) == ("rtsp", 2.0, "udp")
    assert (desk.kind, desk.url) == ("webcam", "0")
    assert (demo.kind, demo.loop, demo.codec) == ("file", True, "raw")
    assert config.ingest.stream_maxlen == 50


def test_env_overrides_resolve_field_paths(tmp_path: Path) -> None:
    path = write(tmp_path, "ingest: {lease_ttl_s: 9}\n")
    config = load_config(
        path,
        env={
            "VIGIL_REDIS_URL": "rediss://:pw@redis.example:6380/1",
            "VIGIL_INGEST_LEASE_TTL_S": "2.5",
            "VIGIL_INGEST_METRICS_PORT": "9200",
            "VIGIL_LOGGING_FORMAT": "json",
            "VIGIL_TEST_ANYTHING": "ignored by design",
            "VIGIL_ALLOCATOR": "glibc",  # process settings, not configuration
            "VIGIL_RUNTIME_TUNED": "1",
        },
    )
    assert config.redis.url == "rediss://:pw@redis.example:6380/1"
    assert config.ingest.lease_ttl_s == 2.5
    assert config.ingest.metrics_port == 9200
    assert config.logging.format == "json"


def test_vigil_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "ingest: {stream_maxlen: 7}\n")
    assert load_config(env={"VIGIL_CONFIG": str(path)}).ingest.stream_maxlen == 7


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cameras:\n  - {id: a, url: x.mp4, fps: 0}\n", "cameras[0].fps"),
        ("cameras:\n  - {id: a, url: x.mp4}\n  - {id: b, url: y.mp4, codec: h265}\n", "cameras[1].codec"),
        ("ingest: {lease_tll_s: 3}\n", "ingest.lease_tll_s"),
        ("cameras:\n  - {id: 'bad id!', url: x.mp4}\n", "cameras[0].id"),
        ("cameras:\n  - {id: a, url: x.mp4}\n  - {id: a, url: y.mp4}\n", "used twice"),
        ("cameras:\n  - {id: a, url: 'rtsp://h/s', loop: true}\n", "loop applies to file sources"),
        ("ingest: {reconnect_base_s: 5, reconnect_cap_s: 1}\n", "reconnect_cap_s"),
        ("redis: {url: 'http://nope'}\n", "redis.url"),
        (
            "alerts:\n  rules:\n    - {name: gun, labels: [pistol]}\n    - {name: gun, labels: [knife]}\n",
            "rules[1].name 'gun' is used twice",
        ),
        (
            "alerts:\n  rules:\n    - {name: gun, labels: [pistol], verify: true}\n",
            "alerts.rules[0].verify needs detector.verifier",
        ),
        ("detector: {verifier: {margin: -0.1}}\n", "detector.verifier.margin"),
        ("detector: {regions: {max_regions: 17}}\n", "detector.regions.max_regions"),
        ("detector: {regions: {min_frame_scale: 0.5}}\n", "detector.regions.min_frame_scale"),
        ("detector: {regions: {slices: 4}}\n", "detector.regions.slices"),
        ("detector: {tracker: {max_age: 30}}\n", "max_age counted frames and is no longer read: set max_age_s"),  # noqa: E501
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(path) in str(caught.value)
    assert expected in str(caught.value)


def test_a_verify_rule_with_the_verifier(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "detector: {verifier: {every_s: 1}}\n"
        "alerts:\n  rules:\n    - {name: gun, labels: [pistol], verify: true, verify_min_score: 0.4}\n",
    )
    config = load_config(path, env={})
    assert config.detector.verifier is not None and config.detector.verifier.every_s == 1
    assert (config.alerts.rules[0].verify, config.alerts.rules[0].verify_min_score) == (True, 0.4)
    assert load_config(env={}).detector.verifier is None, "off by default"


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"ingest\.lease_ttl_s \(from VIGIL_INGEST_LEASE_TTL_S\)"):
        load_config(env={"VIGIL_INGEST_LEASE_TTL_S": "-1"})


def test_unknown_env_variable_is_refused() -> None:
    with pytest.raises(ConfigError, match="VIGIL_INGEST_NOPE"):
        load_config(env={"VIGIL_INGEST_NOPE": "1"})


def test_yaml_syntax_error_and_wrong_top_level(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "cameras: [\n"), env={})
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", env={})


def test_error_never_shows_a_password(tmp_path: Path) -> None:
    path = write(tmp_path, "cameras:\n  - {id: a, url: 'rtsp://admin:hunter22@cam/s', fps: -1}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={"VIGIL_REDIS_URL": "redis://:s3cretpw@h:1/0x"})
    assert "hunter22" not in str(caught.value)
    assert "s3cretpw" not in str(caught.value)


@pytest.mark.parametrize("camera_id", ["gate\n", "gate\r\n", "\ngate", "a" * 65])
def test_a_camera_id_must_match_in_full(tmp_path: Path, camera_id: str) -> None:
    path = write(tmp_path, yaml.safe_dump({"cameras": [{"id": camera_id, "url": "x.mp4"}]}))
    with pytest.raises(ConfigError, match=r"cameras\[0\]\.id"):
        load_config(path, env={})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: " + "1" * 5000 + "\n", "a value cannot be read"),  # int() refuses 5000 digits: ValueError
        ("a: 2020-13-01\n", "a value cannot be read"),  # a date in month 13: ValueError
        ("a: !!timestamp not-a-date\n", "a value cannot be read"),  # PyYAML: AttributeError
        ("a: " + "[" * 600 + "]" * 600 + "\n", "nested too deeply"),  # RecursionError
    ],
)
def test_yaml_that_pyyaml_fails_on_is_a_config_error(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text), env={})
    (tmp_path / "latin1.yaml").write_bytes(b"ingest: {instance: caf\xe9}\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(tmp_path / "latin1.yaml", env={})


def test_a_camera_motion_section_overrides_only_the_fields_it_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "detector: {motion: {threshold: 20}}\n"
        "cameras:\n"
        "  - {id: lobby, url: a.mp4, motion: {masks: [[[0.8, 0], [1, 0], [1, 0.1]]]}}\n"
        "  - {id: yard, url: b.mp4, motion: {enabled: false}}\n"
        "  - {id: gate, url: c.mp4}\n",
    )
    config = load_config(path, env={})
    lobby, yard, gate = (config.motion_for(camera) for camera in ("lobby", "yard", "gate"))
    assert (lobby.threshold, lobby.masks) == (20, (((0.8, 0.0), (1.0, 0.0), (1.0, 0.1)),))
    assert (yard.enabled, yard.threshold) == (False, 20)
    assert gate == config.detector.motion and config.motion_for("from-the-registry") == config.detector.motion
    assert load_config(env={"VIGIL_DETECTOR_MOTION_ENABLED": "false"}).detector.motion.enabled is False
    assert load_config(env={}).detector.motion.enabled, "on by default"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("detector: {motion: {max_interval_s: 3}}\n",
         r"detector\.motion: max_interval_s \(3 s\) must be below alerts\.rules\[0\]\.end_after_s \(3 s\)"),
        ("cameras: [{id: a, url: a.mp4, fps: 1, motion: {max_interval_s: 2}}]\n",
         r"cameras\[0\]\.motion: max_interval_s \(2 s\) plus one frame at 1 fps must be below"),
        ("cameras: [{id: a, url: a.mp4, motion: {masks: [[[0, 0], [1, 0]]]}}]\n",
         r"masks\[0\] needs at least 3"),
        ("detector: {motion: {masks: [[[0, 0], [2, 0], [1, 1]]]}}\n", "fractions of the frame"),
    ],
)  # fmt: skip
def test_motion_gating_that_could_end_a_still_objects_alert_is_refused(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text), env={})
    rule_elsewhere = "alerts: {rules: [{name: gun, labels: [pistol], cameras: [b]}]}\n"
    fine = (
        "cameras: [{id: a, url: a.mp4, fps: 1, motion: {max_interval_s: 2}}, {id: b, url: b.mp4}]\n"
        + rule_elsewhere,
        "detector: {motion: {max_interval_s: 3, enabled: false}}\n",
    )
    for text_ok in fine:
        load_config(write(tmp_path, text_ok), env={})


def test_the_frames_bound_holds_the_recorders_pre_roll() -> None:
    from pydantic import ValidationError

    from shared.config import CameraConfig, VigilConfig

    slow, fast = CameraConfig(id="slow", url="a.mp4", fps=5), CameraConfig(id="fast", url="b.mp4", fps=30)
    config = VigilConfig(cameras=(slow, fast))  # record: pre_s 5 + alert_lag_s 5
    assert (config.frames_maxlen(slow), config.frames_maxlen(fast)) == (100, 300)  # 5 fps: stream_maxlen
    no_pre_roll = VigilConfig(cameras=(fast,), record={"pre_s": 0})
    assert no_pre_roll.frames_maxlen(fast) == 100
    with pytest.raises(ValidationError, match="max_clip_s"):
        VigilConfig(record={"pre_s": 10, "max_clip_s": 5})


def test_region_inference_is_off_by_default_and_set_by_file_or_env(tmp_path: Path) -> None:
    regions = load_config(env={}).detector.regions
    assert (regions.enabled, regions.max_regions, regions.min_frame_scale) == (False, 2, 1.5)
    path = write(tmp_path, "detector: {regions: {enabled: true, max_regions: 4}}\n")
    assert load_config(path, env={}).detector.regions.max_regions == 4
    assert load_config(env={"VIGIL_DETECTOR_REGIONS_ENABLED": "true"}).detector.regions.enabled
