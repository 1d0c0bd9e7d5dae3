"""``vigil web``'s one-shot options: --set-password (a hash, on stdout or into a file), --add-token,
--check; and the refusal of an open console beyond loopback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from web.auth import ApiTokens
from web.passwords import verify_password


def vigil(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vigil", "web", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )


def test_set_password_prints_or_writes_a_scrypt_hash(tmp_path: Path) -> None:
    printed = vigil("--set-password", stdin="a long secret\n")
    assert printed.returncode == 0 and verify_password("a long secret", printed.stdout.strip())
    assert "a long secret" not in printed.stdout + printed.stderr
    target = tmp_path / "web.hash"
    assert vigil("--set-password", "--write", str(target), stdin="a long secret\n").returncode == 0
    assert verify_password("a long secret", target.read_text().strip()) and target.stat().st_mode & 0o077 == 0
    short = vigil("--set-password", stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr


def test_add_token_and_check(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    made = vigil("--add-token", "nvr", env={"VIGIL_WEB_API_TOKENS_FILE": str(tokens)})
    assert made.returncode == 0 and ApiTokens.load(str(tokens)).name_of(made.stdout.strip()) == "nvr"
    assert vigil("--add-token", "nvr").returncode == 2, "needs web.api_tokens_file"
    assert vigil("--check", env={"VIGIL_WEB_METRICS_PORT": "1"}).returncode == 1, "nothing answers there"


def test_an_open_console_beyond_loopback_refuses_to_start(tmp_path: Path) -> None:
    env = {
        "VIGIL_WEB_HOST": "0.0.0.0",
        "VIGIL_RECORD_STORE_URL": f"sqlite:///{tmp_path}/events.db",
        "VIGIL_REDIS_URL": "redis://127.0.0.1:6379/13",
    }
    subprocess.run(
        [sys.executable, "-m", "vigil", "record", "--upgrade-db"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        timeout=60,
        check=True,
    )
    refused = vigil(env=env)
    assert refused.returncode == 2 and "not loopback, and no password or API token" in refused.stderr
