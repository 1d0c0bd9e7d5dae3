"""Exporting (and for ``auto``, measuring) a checkpoint's compiled model in a child process.

``python -m detector.engines.prepare CHOICE`` (``CHOICE``: the :class:`EngineChoice` as JSON) does
what a first start needs the checkpoint and torch for, writes it into the cache, and exits: 0 when
done, 1 with the reason on stderr. The service that asked then serves from the cache without
ever importing torch (``detector/engines/serving.py``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

from detector.engines.serving import EngineChoice

log = logging.getLogger(__name__)
PREPARE_TIMEOUT_S = 900.0
"""An export takes 10-60 s and ``auto``'s measurement about as long; a stuck child is stopped."""


def prepare_in_child(choice: EngineChoice) -> str | None:
    """Run the preparation for ``choice`` in a child process; None when it succeeded, else why not."""
    fields = {key: (str(value) if isinstance(value, Path) else value)
              for key, value in dataclasses.asdict(choice).items()}  # fmt: skip
    log.info("engine: preparing %s %s for %s in a child process", choice.engine, choice.precision,
             choice.checkpoint.name)  # fmt: skip
    try:
        done = subprocess.run([sys.executable, "-m", __name__, json.dumps(fields)], capture_output=True,
                              text=True, timeout=PREPARE_TIMEOUT_S, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"the preparing child failed: {error}"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"the preparing child exited with {done.returncode}"
    return None


def main(argv: list[str]) -> int:
    from detector.engines.build import build_detector
    from detector.models.errors import ModelLoadError

    fields = json.loads(argv[0])
    cache_dir = Path(fields["cache_dir"]) if fields["cache_dir"] else None
    choice = EngineChoice(**{**fields, "checkpoint": Path(fields["checkpoint"]), "cache_dir": cache_dir})
    try:
        build_detector(choice)
    except ModelLoadError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
