"""``load_config`` on any YAML text (and any bytes) in a file, and on any ``VIGIL_*`` overrides:
a ``VigilConfig`` or a ``ConfigError``, never another exception."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from shared.config import VigilConfig, load_config
from shared.errors import ConfigError
from tests.fuzz import FUZZ


def field_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every field path of the configuration, sections and leaves."""
    paths = []
    for name, info in model.model_fields.items():
        paths.append((*prefix, name))
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            paths += field_paths(info.annotation, (*prefix, name))
    return paths


PATHS = field_paths(VigilConfig)
NAMES = sorted({part for path in PATHS for part in path} | {"id", "url", "fps", "zones", "labels", "name"})

hostile_scalars = st.sampled_from(
    ["1" * 5000, "0x" + "f" * 5000, "2020-13-01", "1e400", "-1e400", ".nan", ".inf", "~", "null", "0o777",
     "190:20:30", "!!binary aGk=", "!!timestamp 2020-99-99", "!!python/name:os.system", "&a [*a]", "*nope",
     "[" * 600, "{a: " * 600, "[" * 600 + "]" * 600, "? [1, 2]\n: 3", "'unterminated", "\t\tx",
     "%YAML 9.9\n---", "rtsp://u:p@cam/s"]
)  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(["rtsp://cam/s", "redis://127.0.0.1:6379/0", "gate\n", "0"]),
)  # fmt: skip
keys = st.one_of(st.sampled_from(NAMES), st.text(max_size=10), st.integers(-3, 3))
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)


@st.composite
def yaml_texts(draw: st.DrawFn) -> str | bytes:
    """A YAML document of config-like sections (sometimes cut or spliced with hostile text),
    raw text, or raw bytes."""
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.text(max_size=200))
    if kind == 1:
        return draw(st.binary(max_size=200))
    sections = draw(st.dictionaries(st.sampled_from(NAMES), documents, max_size=4))
    text = yaml.safe_dump(sections, allow_unicode=True)
    if kind == 2:
        text = text[: draw(st.integers(0, len(text)))]
    elif kind == 3:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(hostile_scalars) + text[at:]
    elif kind == 4:
        text += f"{draw(st.sampled_from(NAMES))}: {draw(hostile_scalars)}\n"
    return text


def loads_or_config_error(**kwargs: Any) -> None:
    try:
        config = load_config(**kwargs)
    except ConfigError:
        return
    assert isinstance(config, VigilConfig)


@pytest.mark.slow
@FUZZ
@given(yaml_texts())
def test_any_yaml_file(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vigil.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        loads_or_config_error(path=path, env={})


env_names = st.one_of(
    st.sampled_from(["VIGIL_" + "_".join(path).upper() for path in PATHS]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789", max_size=30).map(lambda s: "VIGIL_" + s),
    st.sampled_from(["VIGIL_", "VIGIL__", "VIGIL_TEST_X", "VIGIL_ALLOCATOR", "VIGIL_CAMERAS", "OTHER"]),
)
env_values = st.one_of(
    st.text(max_size=30), hostile_scalars,
    st.sampled_from(["", "0", "-1", "1e400", "nan", "inf", "true", "null", "None", "[1, 2]", "{a: 1}",
                     "99999999999999999999999", "rediss://:pw@host:1/0", "cuda:0", "json", "\x00"]),
)  # fmt: skip


@FUZZ
@given(env=st.dictionaries(env_names, env_values, max_size=6), text=st.sampled_from([None, "ingest: {x: 9}"]))
def test_any_environment_overrides(env: dict[str, str], text: str | None) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = None
        if text is not None:
            path = Path(folder) / "vigil.yaml"
            path.write_text(text)
        loads_or_config_error(path=path, env=env)


def test_a_file_name_with_a_nul_byte_is_a_config_error() -> None:
    try:
        load_config(env={"VIGIL_CONFIG": "vigil\x00.yaml"})
    except ConfigError as error:
        assert "not a usable file name" in str(error)
    else:
        raise AssertionError("no ConfigError")
