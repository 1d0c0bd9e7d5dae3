"""Where the shared data set lives: ``$VIGIL_TEST_DATA``, else ``../shared/data`` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    candidates = [Path(os.environ["VIGIL_TEST_DATA"])] if os.environ.get("VIGIL_TEST_DATA") else []
    candidates += [REPO.parent / "shared" / "data", Path("/work/shared/data")]
    for candidate in candidates:
        if (candidate / "videos").is_dir():
            return candidate
    tried = ", ".join(map(str, candidates))
    raise FileNotFoundError(f"the shared data set was not found; set VIGIL_TEST_DATA (tried: {tried})")
