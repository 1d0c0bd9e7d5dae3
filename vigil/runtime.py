"""Process settings for the commands that run PyTorch on the CPU: the allocator and OpenMP's wait
policy. Both must be in place before torch loads, so :func:`tune_for_torch` re-executes the
process with them when they are missing.

Measured on a 2-core machine (``bench/models.py``, Lite0 YOLO at 416 px, batch 8):

* glibc's malloc hands large tensor buffers back to the kernel after every batch, and pays
  ~60 000 page faults per image to get them again: 3.25x slower than tcmalloc (Debian's
  ``libtcmalloc-minimal4``, through ``LD_PRELOAD``). Without tcmalloc, telling glibc to keep its
  memory (``mallopt``: no mmap for big blocks, no trimming) removes most of it.
* OpenMP's worker threads spin while they wait; when other processes share the cores (ingest,
  Redis, a second replica), that made inference 4.2x slower: ``OMP_WAIT_POLICY=PASSIVE``.

``VIGIL_ALLOCATOR=glibc`` keeps glibc untouched (e.g. to measure it).

OpenVINO aborts under a preloaded allocator (``free(): invalid pointer`` while compiling a model;
openvinotoolkit/openvino#28551, #29025): a process that may run it gets glibc told to keep its
memory instead, and a tcmalloc inherited through ``LD_PRELOAD`` is taken out.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)
TCMALLOC_CANDIDATES = (
    "/usr/local/lib/libtcmalloc_minimal.so.4",  # the Dockerfile's link
    "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4",
    "/usr/lib64/libtcmalloc_minimal.so.4",
)
_TUNED = "VIGIL_RUNTIME_TUNED"
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters


def tcmalloc_path() -> str | None:
    return next((path for path in TCMALLOC_CANDIDATES if Path(path).exists()), None)


def tune_for_torch(command: Sequence[str], *, tcmalloc: bool = True) -> None:
    """Make sure this process runs with a PASSIVE OpenMP wait policy and a non-trimming
    allocator: tcmalloc when ``tcmalloc`` (and it is installed), else glibc told to keep its memory.
    Re-executes ``command`` (this process's own command line) when ``LD_PRELOAD`` must change.
    Returns when the process is tuned; does not return when it re-executes."""
    if os.environ.get(_TUNED):
        return
    env = {**os.environ, _TUNED: "1"}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    glibc_untouched = os.environ.get("VIGIL_ALLOCATOR") == "glibc"
    library = tcmalloc_path() if tcmalloc and not glibc_untouched else None
    inherited = env.get("LD_PRELOAD", "").split()
    preload = [path for path in inherited if "tcmalloc" not in Path(path).name]
    preload += [library] if library else []
    if preload != inherited:
        if preload:
            env["LD_PRELOAD"] = " ".join(preload)
        else:
            env.pop("LD_PRELOAD")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *command], env)
    os.environ.update({_TUNED: "1", "OMP_WAIT_POLICY": env["OMP_WAIT_POLICY"]})
    if not glibc_untouched:
        keep_glibc_memory()


def keep_glibc_memory() -> bool:
    """glibc without tcmalloc: big blocks from the heap, and no trimming back to the kernel."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    libc = ctypes.CDLL(name)
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
    log.debug("glibc mallopt (no mmap, no trim): %s", "done" if ok else "refused")
    return ok
