"""The torch commands re-execute themselves with tcmalloc and a passive OpenMP wait policy."""

import os
import subprocess
import sys

import pytest

from vigil.runtime import keep_glibc_memory, tcmalloc_path

PROBE = (
    "import os, sys; from vigil.runtime import tune_for_torch; "
    "tune_for_torch(['-c', sys.argv[-2], sys.argv[-1]], tcmalloc=sys.argv[-1] == 'tcmalloc'); "
    "maps = open('/proc/self/maps').read(); "
    "print(os.environ['OMP_WAIT_POLICY'], 'tcmalloc' in maps)"
)


def run_probe(allocator: str = "tcmalloc", **env: str) -> str:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIGIL_RUNTIME_TUNED", "LD_PRELOAD", "OMP_WAIT_POLICY")
    }
    result = subprocess.run([sys.executable, "-c", PROBE, PROBE, allocator], capture_output=True, text=True,
                            env={**clean, **env}, check=True, timeout=60)  # fmt: skip
    return result.stdout.strip()


@pytest.mark.skipif(tcmalloc_path() is None, reason="tcmalloc is installed by tools/system-deps.sh")
def test_reexecs_with_tcmalloc_and_passive_waiting() -> None:
    assert run_probe() == "PASSIVE True"


@pytest.mark.skipif(tcmalloc_path() is None, reason="tcmalloc is installed by tools/system-deps.sh")
def test_a_process_that_may_run_openvino_drops_an_inherited_tcmalloc() -> None:
    """OpenVINO aborts under a preloaded allocator: such a process re-executes without it."""
    assert run_probe("glibc", LD_PRELOAD=str(tcmalloc_path())) == "PASSIVE False"


def test_glibc_when_asked_and_an_explicit_wait_policy_is_kept() -> None:
    assert run_probe(VIGIL_ALLOCATOR="glibc", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE False"


def test_glibc_can_be_told_to_keep_its_memory() -> None:
    assert keep_glibc_memory()
