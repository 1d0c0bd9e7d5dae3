"""`vigil demo` end to end: the bundled clip through ingest, detect and alerts in one process."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from detector.runner import DEFAULT_WEIGHTS

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_demo_runs_the_whole_pipeline_on_the_bundled_clip(tmp_path: Path) -> None:
    assert DEFAULT_WEIGHTS.exists(), "the shipped detector is part of the repository"
    video = tmp_path / "annotated.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli", "demo", "--video", str(video)],
        capture_output=True, text=True, timeout=280, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = re.search(r"frames ingested (\d+), processed (\d+)", result.stdout)
    assert summary, result.stdout
    ingested, processed = map(int, summary.groups())
    assert ingested == 150, "30 s at 5 fps"
    assert processed >= 0.9 * ingested, "a 2-core CPU keeps up with one camera at 5 fps"
    assert "capture → detections published: p50" in result.stdout
    assert video.stat().st_size > 100_000
