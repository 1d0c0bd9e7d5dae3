"""``bench/ingest_size.py`` on a small scale: a 2 s 720p clip through the real ingest path at each
``max_side``, into the test Redis, with a 5-entry stream: its figures grow with the size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.ingest_size import main
from tests.support.media import make_h264_clip

pytestmark = pytest.mark.slow  # three child processes, each running ingest on the clip


def test_a_larger_max_side_costs_more_bytes_memory_and_decode(redis_url: str, tmp_path: Path) -> None:
    clip = make_h264_clip(tmp_path / "clip.mp4", seconds=2, fps=25, width=1280, height=720)
    out = tmp_path / "sizes.json"
    main([
        "--repeat", "1", "--decode-passes", "1", "--stream-maxlen", "5", "--fleet", "16",
        "--clip", str(clip), "--redis-url", redis_url, "--json", str(out),
    ])  # fmt: skip

    data = json.loads(out.read_text())
    rows = {row["max_side"]: row for row in data["summary"]}
    small, middle, large = rows[640], rows[960], rows[1280]
    assert [r["frame"] for r in (small, middle, large)] == ["640x360", "960x540", "1280x720"]
    assert small["jpeg_mean_kb"] < middle["jpeg_mean_kb"] < large["jpeg_mean_kb"]
    assert small["jpeg_mean_kb"] <= small["jpeg_p95_kb"]
    assert large["kbit_s"] == pytest.approx(large["jpeg_mean_kb"] * 5 * 8)  # 5 fps, the default
    for row in rows.values():
        assert row["stream_entries"] >= 5
        assert row["stream_mib"] * 2**20 > row["stream_entries"] * row["jpeg_mean_kb"] * 1000 * 0.9
        assert row["fleet_mib"] == pytest.approx(16 * row["stream_mib"])
        assert row["ingest_ms"] > 0 and row["encode_ms"] > 0
        assert set(row["decode_ms"]) == {"whole 384", "whole 448", "native", "motion"}
    assert small["ingest_ratio"] == 1.0
    assert small["stream_mib"] < middle["stream_mib"] < large["stream_mib"]
    assert small["decode_ms"]["native"] < large["decode_ms"]["native"]  # 4x the pixels
    native = data["resize_ms"]["1280x720"]
    assert native["1280"] < 0.1 < native["640"]  # a 1280x720 frame at max_side 1280 is not resized
