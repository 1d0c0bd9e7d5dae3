"""Password hashes for the console's login: scrypt, salted, in one self-describing string.

``scrypt$<log2 n>$<r>$<p>$<salt, base64>$<hash, base64>``. Standard library only, so that
``python3 -m web.passwords`` can hash a password on a host without Vigil installed
(``deploy/make-env.sh`` does); ``vigil web --set-password`` is the usual way.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import secrets
import sys

LOG2_N, BLOCK_SIZE, PARALLELISM = 15, 8, 1
"""scrypt's cost: 2**15 × 8 × 128 bytes = 32 MiB of memory and about 0.1 s of one core per try."""
SALT_BYTES, HASH_BYTES = 16, 32
_MAX_MEMORY = 64 * 1024 * 1024
_MAX_LOG2_N = 20
"""A stored hash asking for more work than this is refused (it would take seconds per login)."""


class BadHash(ValueError):
    """A stored hash that is not ``scrypt$...`` as :func:`hash_password` writes it."""


def hash_password(password: str, *, log2_n: int = LOG2_N) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, log2_n, BLOCK_SIZE, PARALLELISM)
    return "$".join(("scrypt", str(log2_n), str(BLOCK_SIZE), str(PARALLELISM), _b64(salt), _b64(digest)))


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time compare); raises BadHash."""
    log2_n, r, p, salt, digest = parse_hash(stored)
    return hmac.compare_digest(_scrypt(password, salt, log2_n, r, p), digest)


def parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.strip().split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise BadHash("not a scrypt$... hash (make one with vigil web --set-password)")
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise BadHash("a scrypt hash with a malformed field") from None
    if not (1 <= log2_n <= _MAX_LOG2_N and 1 <= r <= 32 and 1 <= p <= 16 and salt and digest):
        raise BadHash("a scrypt hash with parameters out of range")
    return log2_n, r, p, salt, digest


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=2**log2_n, r=r, p=p, maxmem=_MAX_MEMORY, dklen=HASH_BYTES
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def prompt_password() -> str:
    """A password typed twice at the terminal (or one line of standard input when it is not one)."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("console password: ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("the two passwords differ")
    return first


if __name__ == "__main__":  # python3 -m web.passwords: a hash of the password on standard input
    print(hash_password(prompt_password()))
