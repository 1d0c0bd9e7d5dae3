"""Compiled models exported from a checkpoint, kept on disk and checked before every use.

An entry is a folder named after the checkpoint's sha256, the engine and its version, Vigil's export
format and the precision. It holds the model files and ``manifest.json`` with the sha256 of each
file. An entry that is missing, stale (another checkpoint, engine version or export format) or
corrupt (a file changed or gone, an unreadable manifest) is never loaded: :meth:`EngineCache.fetch`
rebuilds it. Entries are written to a temporary folder and renamed into place, so an export that
crashes half way leaves nothing a later start would trust.

Lookups also search read-only folders (``extra_roots``): the INT8 models shipped beside the
checkpoints (``detector/weights/engines/``), which only ``vigil quantize`` can make (it needs the
training and validation images).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
EXPORT_FORMAT = 1
"""Bump when the exported network or its inputs change meaning (``detector/export.py``)."""
MANIFEST = "manifest.json"


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class EntryKey:
    checkpoint_sha256: str
    engine: str
    engine_version: str
    precision: str

    @property
    def folder(self) -> str:
        return (f"{self.checkpoint_sha256[:16]}-{self.engine}-{self.engine_version}"
                f"-f{EXPORT_FORMAT}-{self.precision}")  # fmt: skip

    def fields(self) -> dict[str, Any]:
        return {
            "checkpoint_sha256": self.checkpoint_sha256, "engine": self.engine,
            "engine_version": self.engine_version, "export_format": EXPORT_FORMAT,
            "precision": self.precision,
        }  # fmt: skip


@dataclass(frozen=True)
class Entry:
    folder: Path
    manifest: dict[str, Any]

    def path(self, name: str) -> Path:
        return self.folder / name


class EngineCache:
    def __init__(self, root: str | Path, *, extra_roots: Sequence[str | Path] = ()) -> None:
        self.root = Path(root)
        self.extra_roots = tuple(Path(extra) for extra in extra_roots)

    def find(self, key: EntryKey) -> Entry | None:
        """The valid entry for ``key`` (the writable root first), or None; why each candidate was
        refused is logged."""
        for root in (self.root, *self.extra_roots):
            folder = root / key.folder
            if not folder.exists():
                continue
            problem = check_entry(folder, key)
            if problem is None:
                return Entry(folder, json.loads((folder / MANIFEST).read_text()))
            log.warning("engine cache: %s refused (%s)", folder, problem)
        return None

    def fetch(self, key: EntryKey, build: Callable[[Path], Mapping[str, Any]]) -> Entry:
        """The valid entry for ``key``, built first when there is none. ``build(folder)`` writes the
        model files into ``folder`` and returns extra manifest fields."""
        return self.find(key) or self.store(key, build)

    def store(self, key: EntryKey, build: Callable[[Path], Mapping[str, Any]]) -> Entry:
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{key.folder}.", dir=self.root))
        try:
            extra = dict(build(scratch))
            files = {path.name: file_sha256(path) for path in sorted(scratch.iterdir()) if path.is_file()}
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            manifest = {**key.fields(), **extra, "files": files, "created": created}
            (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2))
            target = self.root / key.folder
            if target.exists():  # a stale or corrupt entry of the same name
                shutil.rmtree(target)
            os.replace(scratch, target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        log.info("engine cache: wrote %s", target)
        return Entry(target, manifest)


def check_entry(folder: Path, key: EntryKey) -> str | None:
    """Why the entry in ``folder`` must not be used for ``key``, or None when it is sound."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        return f"manifest unreadable: {error}"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return "manifest malformed"
    for field, expected in key.fields().items():
        if manifest.get(field) != expected:
            return f"made for {field}={manifest.get(field)!r}, not {expected!r}"
    for name, digest in manifest["files"].items():
        path = folder / name
        if Path(name).name != name or not path.is_file():
            return f"file {name!r} missing"
        with contextlib.suppress(OSError):
            if file_sha256(path) == digest:
                continue
        return f"file {name!r} does not match its sha256"
    return None
