"""ClipEncoder: BGR pictures with capture times in, an H.264 MP4 file out (the system ``ffmpeg``).

The clip has a constant frame rate (the camera's ``fps``): each picture fills the frame slots from
its capture time to the next picture's, so a clip lasts as long as what it shows even when the
camera dropped or the detector skipped frames. The file is written under a temporary name (``.part``
beside the final one) and renamed when ffmpeg has finished it: a crash, a kill or a full disk never
leaves a half clip under the final name. ``yuv420p``, ``+faststart`` (the index first): every
browser plays it, and seeks before the download has finished.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from shared.errors import VigilError

log = logging.getLogger(__name__)
FFMPEG = "ffmpeg"
FINISH_TIMEOUT_S = 60.0
PART = ".part"


class ClipWriteError(VigilError):
    """A clip could not be written. ``reason`` is a bounded metric label: ``disk_full`` or ``encoder``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class EncoderSettings:
    fps: float
    crf: int = 26
    preset: str = "veryfast"


def ffmpeg_available() -> bool:
    return shutil.which(FFMPEG) is not None


def temporary_path(final: Path) -> Path:
    """Where ``final`` is written first: named for this process too, so two recorders that both
    think they own a camera (a lease lost during a network split) never write the same file."""
    return final.with_name(f"{final.name}.{os.getpid()}{PART}")


def remove_stale_parts(folder: Path, *, older_than_s: float) -> int:
    """Delete the temporary files a crashed recorder left under ``folder``; how many went."""
    removed = 0
    deadline = time.time() - older_than_s
    for path in folder.glob(f"*/*{PART}") if folder.is_dir() else ():
        try:
            if path.stat().st_mtime < deadline:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        log.info("%s: %d temporary files of interrupted clips removed", folder, removed)
    return removed


class ClipEncoder:
    """One clip being written. ``add`` pictures in capture order, then ``finish`` (or ``abort``)."""

    def __init__(self, final: Path, settings: EncoderSettings) -> None:
        self.final = final
        self.temporary = temporary_path(final)
        self._settings = settings
        self._period_ns = int(1e9 / settings.fps)
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  closed by finish() or abort()
        self._size: tuple[int, int] | None = None
        self._last: np.ndarray | None = None
        self._next_slot_ns = 0
        self.slots = 0
        """Frames written to the clip so far (slots filled)."""
        self.first_ns: int | None = None
        """Capture time of the clip's first picture."""

    @property
    def fps(self) -> float:
        return self._settings.fps

    def add(self, image: np.ndarray, ts_ns: int) -> None:
        """The picture captured at ``ts_ns``: the previous one fills the slots up to it."""
        if self._process is None:
            self._start(image)
            self.first_ns = self._next_slot_ns = ts_ns
        elif ts_ns < self._next_slot_ns - self._period_ns:
            return  # out of order: an older picture than the clip has already shown
        while self._last is not None and self._next_slot_ns < ts_ns:
            self._write(self._last)
        self._last = self._fit(image)

    def finish(self) -> int:
        """Write the last picture, wait for ffmpeg, rename the file into place; its size in bytes."""
        if self._process is None or self._last is None:
            raise ClipWriteError("encoder", "no picture to encode")
        self._write(self._last)
        self._close_input()
        try:
            code = self._process.wait(timeout=FINISH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.abort()
            raise ClipWriteError("encoder", f"ffmpeg did not finish in {FINISH_TIMEOUT_S:.0f} s") from None
        if code != 0:
            error = self._failure(f"ffmpeg exited with {code}")
            self.abort()
            raise error
        try:
            os.replace(self.temporary, self.final)
            size = self.final.stat().st_size
        except OSError as error:
            self.abort()
            raise _os_error(error) from None
        self._stderr.close()
        return size

    def abort(self) -> None:
        """Stop ffmpeg and remove the temporary file (nothing appears under the final name)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._close_input()
        self.temporary.unlink(missing_ok=True)
        self._stderr.close()

    # -- ffmpeg -------------------------------------------------------------------------------

    def _start(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        self._size = (width, height)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        s = self._settings
        command = [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-framerate", f"{s.fps:g}",
            "-i", "pipe:0", "-an",
            "-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2",  # yuv420p needs even sides
            "-c:v", "libx264", "-preset", s.preset, "-crf", str(s.crf), "-pix_fmt", "yuv420p",
            "-g", str(max(1, round(2 * s.fps))), "-movflags", "+faststart", "-f", "mp4", str(self.temporary),
        ]  # fmt: skip
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=self._stderr)  # fmt: skip
        except OSError as error:
            raise ClipWriteError("encoder", f"ffmpeg did not start: {error.strerror}") from None

    def _fit(self, image: np.ndarray) -> np.ndarray:
        """The picture at the clip's size (a camera whose size changed mid-clip)."""
        assert self._size is not None
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(image)

    def _write(self, image: np.ndarray) -> None:
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(image.data)
        except (BrokenPipeError, OSError):  # ffmpeg has died: its stderr says why
            self._process.wait()
            error = self._failure(f"ffmpeg exited with {self._process.returncode}")
            self.abort()
            raise error from None
        self.slots += 1
        self._next_slot_ns += self._period_ns

    def _close_input(self) -> None:
        if self._process is not None and self._process.stdin is not None and not self._process.stdin.closed:
            with contextlib.suppress(OSError):  # ffmpeg gone already
                self._process.stdin.close()

    def _failure(self, what: str) -> ClipWriteError:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        if "No space left on device" in text:
            return ClipWriteError("disk_full", "no space left on device")
        last = text.splitlines()[-1][:200] if text else ""
        return ClipWriteError("encoder", f"{what}: {last}" if last else what)


def _os_error(error: OSError) -> ClipWriteError:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ClipWriteError("disk_full", "no space left on device")
    return ClipWriteError("encoder", f"{error.strerror or error}")


def write_file(final: Path, data: bytes) -> int:
    """``data`` to ``final`` through a temporary name (the snapshot beside a clip); its size.
    Raises ClipWriteError (``disk_full``, or ``encoder`` for another I/O error)."""
    temporary = temporary_path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(data)
        os.replace(temporary, final)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise _os_error(error) from None
    return len(data)
