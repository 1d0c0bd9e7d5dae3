"""Helpers shared by the CPU benchmarks: what the CPU is, the allocator and OpenMP settings torch
runs under (re-executing the script to get them), and the interleaved order of repeats."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
REEXEC_ENV = "BENCH_REEXEC"
"""Set in a re-executed benchmark, so that it does not re-execute again."""
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")

T = TypeVar("T")


def describe_cpu() -> str:
    """Model, family/model numbers and the vector extensions oneDNN's kernels depend on: the
    same script ran torch 2.4x slower (cv2.dnn 1.2x) on an AVX2-only host than on an earlier one."""
    info: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    flags = set(info.get("flags", "").split())
    isa = [name for name in ISA_FLAGS if name in flags]
    return (
        f"{info.get('model name', platform.processor())} (family {info.get('cpu family', '?')}, "
        f"model {info.get('model', '?')}); {' '.join(isa) or 'no AVX2'}"
    )


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tcmalloc_loaded() -> bool:
    return "tcmalloc" in Path("/proc/self/maps").read_text()


def wait_policy() -> str:
    return os.environ.get("OMP_WAIT_POLICY", "unset: libgomp spins before sleeping")


def reexec_tuned(script: str | Path, argv: Sequence[str], *, spin_wait: bool, tcmalloc: bool) -> None:
    """Re-run ``script`` once with ``OMP_WAIT_POLICY=PASSIVE`` (unset for ``spin_wait``; a caller's
    other policy is kept) and, for ``tcmalloc``, tcmalloc preloaded: both are read at load time.
    Returns when nothing needs to change; does not return when it re-executes."""
    if os.environ.get(REEXEC_ENV):
        return
    changes: dict[str, str | None] = {}
    current = os.environ.get("OMP_WAIT_POLICY")
    wanted = None if spin_wait else "PASSIVE"
    if (current is None or current.upper() == "PASSIVE") and (current and current.upper()) != wanted:
        changes["OMP_WAIT_POLICY"] = wanted
    if tcmalloc and not tcmalloc_loaded():
        changes["LD_PRELOAD"] = " ".join(filter(None, (TCMALLOC, os.environ.get("LD_PRELOAD"))))
    if not changes:
        return
    env = {**os.environ, REEXEC_ENV: "1"}
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, str(Path(script).resolve()), *argv], env)


def interleaved(items: Sequence[T], repeats: int) -> Iterator[tuple[int, T]]:
    """Round-robin over ``items``, the starting one rotated each repeat, so that a noisy minute on a
    shared machine spreads over all of them."""
    for repeat in range(repeats):
        shift = repeat % len(items)
        for item in [*items[shift:], *items[:shift]]:
            yield repeat, item
