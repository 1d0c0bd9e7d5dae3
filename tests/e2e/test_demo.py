"""`vigil demo` end to end: the bundled clip through ingest, detect and alerts in one process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from detector.runner import DEFAULT_WEIGHTS
from tests.support.data import data_dir

KEEPS_UP = 0.8
"""Share of the ingested frames the detector must process or skip for want of motion (motion
gating). It skips older frames to stay current when it falls behind (by design), so a loaded 2-core
CI machine may process a little less than all; the speed itself is measured by bench/pipeline.py."""
SUMMARY = re.compile(r"frames ingested (\d+), processed (\d+), skipped (\d+) without motion")

pytestmark = pytest.mark.slow


def _demo(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``vigil demo`` with no Redis configured (so on an embedded one), as on a fresh machine."""
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "demo", *args],
        capture_output=True, text=True, timeout=280, env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.timeout(300)
def test_demo_runs_the_whole_pipeline_on_the_bundled_clip(tmp_path: Path) -> None:
    assert DEFAULT_WEIGHTS.exists(), "the shipped detector is part of the repository"
    video = tmp_path / "annotated.mp4"
    result = _demo(tmp_path, "--video", str(video))
    summary = SUMMARY.search(result.stdout)
    assert summary, result.stdout
    ingested, processed, skipped = map(int, summary.groups())
    assert ingested == 150, "30 s at 5 fps"
    assert processed + skipped >= KEEPS_UP * ingested, "a 2-core CPU keeps up with one camera at 5 fps"
    assert "capture → detections published: p50" in result.stdout
    assert video.stat().st_size > 100_000


@pytest.mark.timeout(300)
def test_demo_on_real_cctv_without_a_weapon_raises_no_alert(tmp_path: Path) -> None:
    """vtest.avi: 80 s of people walking in a square; the shipped detector and the default rule
    (pistol, score >= 0.6 in 3 of 5 frames) must not cry wolf."""
    result = _demo(tmp_path, "--sample", str(data_dir() / "videos" / "vtest.avi"), "--json")
    summary = SUMMARY.search(result.stdout)
    assert summary, result.stdout
    ingested, processed, skipped = map(int, summary.groups())
    assert ingested >= 390 and processed + skipped >= KEEPS_UP * ingested
    assert "alerts 0 started, 0 ended" in result.stdout
    assert '"kind":' not in result.stdout, "no alert event was printed"
