"""The alerts service's CURVE keys (``vigil keys``): its key pair, subscriber key pairs, and the
folder of authorized subscribers that :class:`~alerts.publisher.AlertPublisher`'s authenticator reads.

Files are in ``zmq.auth`` format (``zmq.auth.create_certificates``), which ``vigil subscribe
--client-key/--server-key`` and every ZeroMQ binding's certificate loader read. A folder made with
``vigil keys --dir DIR``::

    DIR/server.key             the service's public key: give it to subscribers (--server-key)
    DIR/server.key_secret      the service's secret key        alerts.curve.server_secret_key_file
    DIR/authorized/NAME.key    one public key per subscriber   alerts.curve.authorized_keys_dir
    DIR/clients/NAME.key, NAME.key_secret
                               key pairs made here for subscribers: hand the pair to NAME, then
                               delete the secret here (or let NAME make its own: ``vigil keys pair``)

Secret key files are readable by their owner only. Revoking a subscriber removes its public key; the
publisher re-reads the folder within seconds and drops the subscriber's connection.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import zmq.auth
from zmq.utils import z85

from shared.config import CurveConfig
from shared.errors import VigilError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""A subscriber's name, all of it (``fullmatch``): it names files."""
PUBLIC, SECRET = ".key", ".key_secret"


class KeyStoreError(VigilError):
    """A key that is missing, already there, or not a CURVE key; the message says which."""


@dataclass(frozen=True)
class Subscriber:
    name: str
    public_key: str
    """Z85, 40 characters: what the authenticator compares."""
    added: datetime


def public_key_of(path: Path) -> str:
    """The Z85 public key in a ``zmq.auth`` certificate file (public or secret)."""
    try:
        public, _secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as error:
        raise KeyStoreError(f"{path}: not a CURVE certificate ({error})") from None
    key = public.decode("ascii", errors="replace")
    if len(key) != 40 or len(_z85_decode(key)) != 32:
        raise KeyStoreError(f"{path}: the public key is not 40 characters of Z85")
    return key


def write_public(path: Path, key: str, *, name: str) -> None:
    """A public certificate, as ``zmq.auth.create_certificates`` writes one."""
    path.write_text(
        f"#   ZeroMQ CURVE Public Certificate: {name} (vigil keys)\n"
        f"metadata\n    name = \"{name}\"\ncurve\n    public-key = \"{key}\"\n",
        encoding="utf-8",
    )


def create_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """``folder/name.key`` and ``folder/name.key_secret`` (owner-only), made in a private folder
    first so no one sees a half-written or readable secret."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    public, secret = folder / f"{name}{PUBLIC}", folder / f"{name}{SECRET}"
    for path in (public, secret):
        if path.exists():
            raise KeyStoreError(f"{path} exists: revoke {name} first, or choose another name")
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=folder))
    try:
        made_public, made_secret = (Path(p) for p in zmq.auth.create_certificates(staging, name))
        os.chmod(made_secret, 0o600)
        os.replace(made_secret, secret)
        os.replace(made_public, public)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return public, secret


class KeyStore:
    def __init__(self, *, server_secret_key_file: str | Path, authorized_keys_dir: str | Path,
                 clients_dir: str | Path | None = None) -> None:  # fmt: skip
        self.server_secret = Path(server_secret_key_file)
        if not self.server_secret.name.endswith(SECRET):
            raise KeyStoreError(f"{self.server_secret}: a secret key file's name ends with {SECRET}")
        self.server_public = self.server_secret.with_name(self.server_secret.name[: -len(SECRET)] + PUBLIC)
        self.authorized = Path(authorized_keys_dir)
        self.clients = Path(clients_dir) if clients_dir else self.authorized.parent / "clients"

    @classmethod
    def in_folder(cls, folder: str | Path) -> KeyStore:
        folder = Path(folder)
        return cls(server_secret_key_file=folder / f"server{SECRET}",
                   authorized_keys_dir=folder / "authorized")  # fmt: skip

    @classmethod
    def from_config(cls, curve: CurveConfig) -> KeyStore:
        return cls(server_secret_key_file=curve.server_secret_key_file,
                   authorized_keys_dir=curve.authorized_keys_dir)  # fmt: skip

    def curve_config(self) -> CurveConfig:
        """The ``alerts.curve`` section that uses this store."""
        return CurveConfig(server_secret_key_file=str(self.server_secret),
                           authorized_keys_dir=str(self.authorized))  # fmt: skip

    # -- the service ---------------------------------------------------------------------------

    def init(self) -> bool:
        """Make the service's key pair and the authorized folder if missing; True if a pair was made.
        An existing pair is kept (subscribers hold its public key)."""
        self.authorized.mkdir(parents=True, exist_ok=True)
        if self.server_secret.exists():
            key = public_key_of(self.server_secret)
            if not self.server_public.exists():  # the secret file holds the public key too
                write_public(self.server_public, key, name="the Vigil alerts service")
            return False
        base = self.server_secret.name[: -len(SECRET)]
        create_pair(self.server_secret.parent, base)
        return True

    def server_public_key(self) -> str:
        """The public certificate of the service (what subscribers pass as ``--server-key``)."""
        if not self.server_secret.exists():
            raise KeyStoreError(f"{self.server_secret}: no server key yet (vigil keys init)")
        key = public_key_of(self.server_secret)
        return (
            "#   ZeroMQ CURVE Public Certificate: the Vigil alerts service (vigil keys server-key)\n"
            f"metadata\ncurve\n    public-key = \"{key}\"\n"
        )

    # -- subscribers ---------------------------------------------------------------------------

    def add(self, name: str, *, public_key_file: Path | None = None) -> Path:
        """Authorize ``name``: its own public key file, or a key pair made here in ``clients/``.
        Returns the authorized public key file."""
        _check_name(name)
        target = self.authorized / f"{name}{PUBLIC}"
        if target.exists():
            raise KeyStoreError(f"{name} is authorized already")
        if public_key_file is None:
            public, _secret = create_pair(self.clients, name)
            key = public_key_of(public)
        else:
            key = public_key_of(public_key_file)
        for subscriber in self.subscribers():
            if subscriber.public_key == key:
                raise KeyStoreError(f"this key is authorized already, as {subscriber.name}")
        self.authorized.mkdir(parents=True, exist_ok=True)
        write_public(target, key, name=name)
        return target

    def subscribers(self) -> list[Subscriber]:
        """The authorized subscribers, by name."""
        if not self.authorized.is_dir():
            return []
        found = []
        for path in sorted(self.authorized.glob(f"*{PUBLIC}")):
            added = datetime.fromtimestamp(path.stat().st_mtime, UTC)
            found.append(Subscriber(path.name[: -len(PUBLIC)], public_key_of(path), added))
        return found

    def revoke(self, name: str) -> list[Path]:
        """Remove ``name``'s public key (and a key pair made for it here); the files removed."""
        _check_name(name)
        target = self.authorized / f"{name}{PUBLIC}"
        if not target.exists():
            raise KeyStoreError(f"{name} is not an authorized subscriber")
        removed = [target]
        target.unlink()
        for path in (self.clients / f"{name}{PUBLIC}", self.clients / f"{name}{SECRET}"):
            if path.exists():
                path.unlink()
                removed.append(path)
        return removed


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise KeyStoreError(f"{name!r}: a subscriber's name is letters, digits, '_', '.', '-' (up to 64)")


def _z85_decode(key: str) -> bytes:
    try:
        return z85.decode(key)
    except (ValueError, KeyError, IndexError):
        return b""
