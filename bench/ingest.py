"""Ingest cost per camera: the full ingest path against a bare ``cv2.VideoCapture.read()`` loop.

The clip is 1280x720 H.264 at 25 fps, 30 s long. It is made once with ffmpeg from ``vtest.avi``,
which is real CCTV footage. The footage is cropped to 16:9, scaled up and sped up 2.5x so that
every frame is new. Light sensor noise is added, and it is encoded at 2 Mbit/s CBR with a 2 s GOP
and no B-frames, like an IP camera. The clip is cached in ``~/.cache/vigil/bench``.
Two loops read it:

* ``bare``: ``cap.read()`` on every frame (decode and BGR conversion), and nothing else.
* ``ingest``: a real :class:`ingest.service.IngestService` with the default ingest and camera
  config (leases and camera status included). It grabs every frame, samples to 5 fps,
  retrieves and resizes to 640 px, encodes JPEG q85, and XADDs to Redis (database 14 by default;
  the script flushes it).

Each loop runs *unpaced* (one camera reads the whole clip as fast as it goes) and *paced* to
real time (``--paced-cameras`` cameras per process, 4 by default, for a window of ``--seconds``
after a warm-up). The cost is the process's CPU time (all threads) per second of video, per
camera. Cameras per core is the inverse of the cost, so ``bare cost / ingest cost`` is
ingest's cameras per core relative to the bare loop; the goal is at least 1.0. The Redis
server's own CPU (``INFO cpu``, server-wide) is shown on its own.

Each measurement runs in a fresh child process (this script with ``--child``), so that every
process gets its own settings. The service defaults are measured first, then each of these
settings is changed on its own:

* allocator (unpaced only): glibc's default; glibc with ``MALLOC_MMAP_MAX_=0`` and a 1 GiB
  ``MALLOC_TRIM_THRESHOLD_``; or tcmalloc through ``LD_PRELOAD``;
* decoder: FFmpeg decoder threads per capture, set through ``OPENCV_FFMPEG_THREADS``. The
  service defaults to one (``ingest.sources.DECODER_THREADS``); OpenCV's default is one per CPU.
  The ``threads;1`` capture option does not change it: the header shows the thread counts;
* cv pool: OpenCV's own thread pool (``cv2.setNumThreads``), which resize and JPEG use. The
  service defaults to one (``ingest.service.OPENCV_THREADS``); OpenCV's default is one per CPU.

Repeats are interleaved, in ABBA order. The script prints medians, and ratios as the median of
the ratios within each repeat.

Finally, N cameras run together at real-time pace (N = 2, 4, 8, ..., then bisection) until one
falls behind or the CPU saturates. Falling behind means reading below 95 % of 25 fps or
publishing below 95 % of 5 fps. Camera starts are spread over a second, because live cameras are
not in phase.

    .venv/bin/python bench/ingest.py                  # about 4 minutes on 2 cores
    .venv/bin/python bench/ingest.py --quick          # about 1.5 minutes, rougher
    .venv/bin/python bench/ingest.py --repeat 5 --seconds 8 --json /tmp/ingest-bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import cv2

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("VIGIL_TEST_DATA") or REPO_ROOT.parent / "shared" / "data")
SOURCE_CLIP = DATA_DIR / "videos" / "vtest.avi"  # $VIGIL_TEST_DATA, as in tests/support/data.py
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vigil" / "bench"
CLIP_NAME = "vtest-720p25-2mbit.mp4"
CLIP_FPS = 25.0
TARGET_FPS = 5.0  # CameraConfig's default fps
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
KEEP_UP = 0.95  # a camera keeps up while it reads and publishes >= 95 % of the nominal rates
CPU_SATURATED = 0.95  # share of all cores
CPUS = len(os.sched_getaffinity(0))
KINDS = ("bare", "ingest")

ALLOCATORS: dict[str, dict[str, str]] = {
    "glibc": {},
    "glibc mmap_max=0": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30)},
    "tcmalloc": {"LD_PRELOAD": TCMALLOC},
}
CV_THREADS_ENV = "BENCH_INGEST_CV_THREADS"
REDIS_URL_ENV = "BENCH_INGEST_REDIS_URL"
CHILD_ENV_VARS = (
    "LD_PRELOAD", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX",
    "OPENCV_FFMPEG_THREADS", "OPENCV_FFMPEG_CAPTURE_OPTIONS", CV_THREADS_ENV,
)  # fmt: skip
"""Variables the parent clears, so that each child gets exactly its variant's environment."""
T = TypeVar("T")


# -- the clip ------------------------------------------------------------------------------------


def ensure_clip(cache_dir: Path = CACHE_DIR) -> Path:
    """The 720p25 H.264 clip, made with ffmpeg on first use."""
    clip = cache_dir / CLIP_NAME
    if clip.is_file():
        return clip
    ffmpeg = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = clip.with_suffix(".part.mp4")
    filters = "setpts=PTS/2.5,crop=768:432:0:72,scale=1280:720:flags=bicubic,noise=alls=5:allf=t"
    subprocess.run(
        [
            ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(SOURCE_CLIP),
            "-vf", filters, "-r", str(int(CLIP_FPS)), "-t", "30", "-an",
            "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-bf", "0",
            "-g", "50", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "2M", "-pix_fmt", "yuv420p",
            str(partial),
        ],
        check=True,
    )  # fmt: skip
    partial.replace(clip)
    return clip


def describe_clip(clip: Path) -> str:
    capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    try:
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = capture.get(cv2.CAP_PROP_FPS)
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    mbit_s = clip.stat().st_size * 8 / (frames / fps) / 1e6
    return f"{width}x{height} H.264 {fps:.0f} fps, {frames / fps:.1f} s, {mbit_s:.1f} Mbit/s"


# -- inside a child process: the loops under test ------------------------------------------------


class Runner(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def join(self, timeout: float | None = None) -> None: ...


class BareLoop:
    """``cap.read()`` on every frame on its own thread, optionally paced to the frame timestamps."""

    def __init__(self, clip: Path, *, paced: bool, loop: bool, delay_s: float = 0.0) -> None:
        self.frames = 0
        self._clip = clip
        self._paced = paced
        self._loop = loop
        self._delay_s = delay_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bare", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        self._stop.wait(self._delay_s)
        while not self._stop.is_set():
            self._read_pass()
            if not self._loop:
                return

    def _read_pass(self) -> None:
        capture = cv2.VideoCapture(str(self._clip), cv2.CAP_FFMPEG)
        origin: tuple[float, float] | None = None  # (monotonic s, stream ms)
        try:
            while not self._stop.is_set():
                ok, _image = capture.read()
                if not ok:
                    return
                self.frames += 1
                if self._paced:
                    pos_ms = capture.get(cv2.CAP_PROP_POS_MSEC)
                    origin = origin or (time.monotonic(), pos_ms)
                    wait_s = origin[0] + (pos_ms - origin[1]) / 1000 - time.monotonic()
                    if wait_s > 0:
                        self._stop.wait(wait_s)
        finally:
            capture.release()


class ServiceRunner:
    """An IngestService on a thread: ``stop`` asks it to stop, as SIGTERM would."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self._thread = threading.Thread(target=service.run, name="ingest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.service.stop()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


class DelayedSource:
    """A video source whose first open waits ``delay_s``, so that cameras start out of phase."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self._inner = inner
        self._delay_s = delay_s

    def open(self) -> None:
        time.sleep(self._delay_s)
        self._delay_s = 0.0
        self._inner.open()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass(frozen=True)
class Overrides:
    """Config fields to set other than to their defaults: ``cameras[]`` and ``ingest`` ones."""

    camera: Mapping[str, Any] = field(default_factory=dict)
    ingest: Mapping[str, Any] = field(default_factory=dict)


DEFAULTS = Overrides()


def camera_id(index: int) -> str:
    return f"bench-{index}"


def ingest_service(
    clip: Path, client: Any, *, count: int, paced: bool, overrides: Overrides = DEFAULTS
) -> Any:
    """The real service with default config (but ``overrides``); paced cameras loop the clip and
    start spread out."""
    from ingest.service import IngestService
    from ingest.sources import OpenCVSource
    from shared.config import CameraConfig, IngestConfig

    def source(camera: CameraConfig, timeouts: Any) -> Any:
        index = int(camera.id.rsplit("-", 1)[1])
        return DelayedSource(OpenCVSource(camera, timeouts), index / count if paced else 0.0)

    ids = [camera_id(index) for index in range(count)]
    cameras = [CameraConfig(id=i, url=str(clip), realtime=paced, loop=paced, **overrides.camera) for i in ids]
    config = IngestConfig(instance=f"bench-{os.getpid()}", metrics_port=None, **overrides.ingest)
    return IngestService(config, tuple(cameras), client=client, burst=True, source_factory=source)


@dataclass
class Snapshot:
    cpu_s: float
    wall_s: float
    machine_busy: int  # jiffies, all processes
    machine_total: int
    minflt: int
    server_cpu_s: float
    frames_read: list[float]
    frames_published: list[float]
    encoded: tuple[float, float]  # resize + encode: seconds, frames (ingest's histogram)


@dataclass
class Sample:
    """One measurement: CPU per camera, rates of the slowest camera."""

    cameras: int
    cpu_s: float
    wall_s: float
    video_s: float
    minflt: int
    server_cpu_s: float
    min_read_fps: float
    min_published_fps: float
    machine_busy: float  # share of all cores busy, every process on the machine
    encode_ms: float = 0.0  # mean wall ms of one resize + encode (ingest only)
    tcmalloc_loaded: bool = False

    @property
    def cost_ms(self) -> float:
        """CPU milliseconds per second of video, per camera."""
        return 1000 * self.cpu_s / self.video_s if self.video_s else float("nan")

    @property
    def faults_per_frame(self) -> float:
        return self.minflt / (self.video_s * CLIP_FPS * self.cameras) if self.video_s else 0.0

    @property
    def cpu_share(self) -> float:
        """Share of all cores that the process used."""
        return self.cpu_s * self.cameras / self.wall_s / CPUS

    @property
    def keeps_up(self) -> bool:
        return (
            self.min_read_fps >= KEEP_UP * CLIP_FPS
            and self.min_published_fps >= KEEP_UP * TARGET_FPS
            and self.cpu_share < CPU_SATURATED
        )


class Cameras:
    """``count`` cameras of one kind, bare loops or one ingest service, and their counters."""

    def __init__(
        self, kind: str, clip: Path, *, count: int, paced: bool, overrides: Overrides = DEFAULTS
    ) -> None:
        self.count = count
        self.client = _redis_client() if kind == "ingest" else None
        self._bare: list[BareLoop] = []
        if kind == "bare":
            self._bare = [
                BareLoop(clip, paced=paced, loop=paced, delay_s=index / count if paced else 0.0)
                for index in range(count)
            ]
            self.runners: list[Runner] = list(self._bare)
        else:
            self._service = ingest_service(clip, self.client, count=count, paced=paced, overrides=overrides)
            self.runners = [ServiceRunner(self._service)]
        if os.environ.get(CV_THREADS_ENV):  # after the service is built: the variant decides
            cv2.setNumThreads(int(os.environ[CV_THREADS_ENV]))

    def counts(self) -> tuple[list[float], list[float]]:
        """Frames read and frames published so far, per camera."""
        if self._bare:
            return [float(loop.frames) for loop in self._bare], [0.0] * self.count
        read = self._per_camera("vigil_ingest_frames_read_total")
        return read, self._per_camera("vigil_ingest_frames_published_total")

    def encoded(self) -> tuple[float, float]:
        """Seconds spent resizing and encoding so far, and frames encoded, all cameras together."""
        if self._bare:
            return 0.0, 0.0
        name = "vigil_ingest_encode_seconds"
        return sum(self._per_camera(f"{name}_sum")), sum(self._per_camera(f"{name}_count"))

    def _per_camera(self, name: str) -> list[float]:
        registry = self._service.metrics.registry
        cameras = (camera_id(index) for index in range(self.count))
        return [registry.get_sample_value(name, {"camera": c}) or 0.0 for c in cameras]

    def snapshot(self) -> Snapshot:
        read, published = self.counts()
        busy, total = _machine_jiffies()
        return Snapshot(
            cpu_s=time.process_time(), wall_s=time.perf_counter(),
            machine_busy=busy, machine_total=total,
            minflt=resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
            server_cpu_s=_server_cpu_s(self.client), frames_read=read, frames_published=published,
            encoded=self.encoded(),
        )  # fmt: skip

    def start(self) -> None:
        for runner in self.runners:
            runner.start()

    def stop(self) -> None:
        for runner in self.runners:
            runner.stop()
        self.join()

    def join(self) -> None:
        for runner in self.runners:
            runner.join(timeout=60)


def _machine_jiffies() -> tuple[int, int]:
    """Busy and total CPU time of the whole machine so far (``/proc/stat``, in jiffies)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def _redis_client() -> Any:
    import redis

    client = redis.Redis.from_url(os.environ[REDIS_URL_ENV])
    client.flushdb()
    return client


def _server_cpu_s(client: Any) -> float:
    if client is None:
        return 0.0
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _sample(first: Snapshot, last: Snapshot, *, cameras: int) -> Sample:
    wall_s = last.wall_s - first.wall_s
    read = [b - a for a, b in zip(first.frames_read, last.frames_read, strict=True)]
    published = [b - a for a, b in zip(first.frames_published, last.frames_published, strict=True)]
    encode_s, encodes = (b - a for a, b in zip(first.encoded, last.encoded, strict=True))
    return Sample(
        cameras=cameras, cpu_s=(last.cpu_s - first.cpu_s) / cameras, wall_s=wall_s,
        video_s=sum(read) / CLIP_FPS / cameras, minflt=last.minflt - first.minflt,
        server_cpu_s=(last.server_cpu_s - first.server_cpu_s) / cameras,
        min_read_fps=min(read) / wall_s, min_published_fps=min(published) / wall_s,
        machine_busy=(last.machine_busy - first.machine_busy)
        / max(1, last.machine_total - first.machine_total),
        encode_ms=1000 * encode_s / encodes if encodes else 0.0,
        tcmalloc_loaded="tcmalloc" in Path("/proc/self/maps").read_text(),
    )  # fmt: skip


def warm_up(clip: Path) -> None:
    """Open the clip once: the first open in a process pays one-off library initialisation."""
    capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    capture.read()
    capture.release()


def measure_unpaced(kind: str, clip: Path, overrides: Overrides = DEFAULTS) -> Sample:
    """One camera reads the whole clip as fast as it can, from before open to the end."""
    warm_up(clip)
    cameras = Cameras(kind, clip, count=1, paced=False, overrides=overrides)
    first = cameras.snapshot()
    cameras.start()
    cameras.join()
    return _sample(first, cameras.snapshot(), cameras=1)


def measure_paced(kind: str, clip: Path, *, count: int, seconds: float) -> Sample:
    """``count`` cameras at real-time pace; a window of ``seconds`` after every camera started."""
    warm_up(clip)
    cameras = Cameras(kind, clip, count=count, paced=True)
    cameras.start()
    time.sleep(1.0 + 2.0)  # starts are spread over 1 s, then 2 s of warm-up
    first = cameras.snapshot()
    time.sleep(seconds)
    last = cameras.snapshot()
    cameras.stop()
    return _sample(first, last, cameras=count)


def decoder_threads(clip: Path, kind: str) -> int:
    """OS threads that one open capture adds to the process (FFmpeg's decoder threads).

    ``bare`` opens a plain ``cv2.VideoCapture``, ``ingest`` the service's ``OpenCVSource``.
    """
    from ingest.sources import OpenCVSource, SourceTimeouts
    from shared.config import CameraConfig

    before = len(os.listdir("/proc/self/task"))
    if kind == "bare":
        capture = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
        capture.read()
        added = len(os.listdir("/proc/self/task")) - before
        capture.release()
        return added
    source = OpenCVSource(CameraConfig(id="probe", url=str(clip)), SourceTimeouts())
    source.open()
    source.grab()
    added = len(os.listdir("/proc/self/task")) - before
    source.close()
    return added


def run_child(args: argparse.Namespace) -> None:
    clip = Path(args.clip)
    if args.child == "threads":
        result: dict[str, Any] = {"decoder_threads": decoder_threads(clip, args.kind)}
    elif args.child == "unpaced":
        result = asdict(measure_unpaced(args.kind, clip))
    else:
        result = asdict(measure_paced(args.kind, clip, count=args.cameras, seconds=args.seconds))
    print(json.dumps(result))


# -- the parent: runs children and keeps their samples -------------------------------------------


@dataclass(frozen=True)
class Variant:
    kind: str = "ingest"
    allocator: str = "glibc"
    decoder_threads: int = CPUS
    cv_threads: int = CPUS

    def env(self) -> dict[str, str]:
        return {
            **ALLOCATORS[self.allocator],
            "OPENCV_FFMPEG_THREADS": str(self.decoder_threads),
            CV_THREADS_ENV: str(self.cv_threads),
        }

    def label(self) -> str:
        return f"{self.allocator}, decoder {self.decoder_threads}, cv pool {self.cv_threads}"

    def bare(self) -> Variant:
        """The bare loop with the same allocator and decoder (it makes no use of the cv pool)."""
        return replace(self, kind="bare", cv_threads=CPUS)


def service_defaults() -> Variant:
    """The thread counts that ``IngestService`` and ``OpenCVSource`` use when nothing is set."""
    from ingest.service import OPENCV_THREADS
    from ingest.sources import DECODER_THREADS

    return Variant(decoder_threads=DECODER_THREADS, cv_threads=OPENCV_THREADS)


@dataclass
class Bench:
    clip: Path
    redis_url: str
    unpaced: dict[Variant, list[Sample]] = field(default_factory=dict)
    paced: dict[Variant, list[Sample]] = field(default_factory=dict)
    capacity: list[Sample] = field(default_factory=list)

    def run(self, mode: str, variant: Variant, *, cameras: int = 1, seconds: float = 0) -> Sample:
        options = ["--cameras", str(cameras), "--seconds", f"{seconds:g}"]
        return Sample(**self._spawn(mode, variant.kind, variant.env(), options))

    def decoder_threads(self, kind: str, env: dict[str, str]) -> int:
        return int(self._spawn("threads", kind, env, [])["decoder_threads"])

    def _spawn(self, mode: str, kind: str, extra: dict[str, str], options: list[str]) -> Any:
        env = {k: v for k, v in os.environ.items() if k not in CHILD_ENV_VARS}
        env.update(extra)
        env[REDIS_URL_ENV] = self.redis_url
        command = [sys.executable, __file__, "--child", mode, "--kind", kind]
        done = subprocess.run(
            [*command, "--clip", str(self.clip), *options],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"child {mode} {kind} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def interleaved(variants: Sequence[T], repeat: int) -> Iterator[T]:
    """ABBA...: each repeat runs every variant, every other repeat in reverse order."""
    for index in range(repeat):
        yield from (variants if index % 2 == 0 else reversed(variants))


def changed_settings(base: Variant, allocators: bool) -> dict[str, Variant]:
    """``base`` with one setting changed at a time: the allocator, the decoder, the cv pool."""
    changed = {"service defaults": base}
    if allocators:
        changed |= {a: replace(base, allocator=a) for a in list(ALLOCATORS) if a != "glibc"}
    decoder = CPUS if base.decoder_threads == 1 else 1
    cv_pool = CPUS if base.cv_threads == 1 else 1
    if decoder != base.decoder_threads:  # on one CPU there is nothing to compare
        changed[f"decoder {decoder}"] = replace(base, decoder_threads=decoder)
    if cv_pool != base.cv_threads:
        changed[f"cv pool {cv_pool}"] = replace(base, cv_threads=cv_pool)
    return changed


def with_bare(variants: Sequence[Variant]) -> list[Variant]:
    """Each ingest variant and its bare loop, without duplicates, in order."""
    return list(dict.fromkeys(v for variant in variants for v in (variant.bare(), variant)))


def run_capacity(
    bench: Bench, variant: Variant, *, seconds: float, max_cameras: int,
    report: Callable[[Sample], None],
) -> None:  # fmt: skip
    """Double N until a camera falls behind, then bisect twice between the last good and bad N."""

    def attempt(count: int) -> bool:
        sample = bench.run("paced", variant, cameras=count, seconds=seconds)
        bench.capacity.append(sample)
        report(sample)
        return sample.keeps_up

    good, bad, count = 0, 0, 2
    while count <= max_cameras:
        if not attempt(count):
            bad = count
            break
        good, count = count, count * 2
    for _ in range(2):
        if not bad or bad - good <= max(1, good // 8):
            break
        middle = (good + bad) // 2
        good, bad = (middle, bad) if attempt(middle) else (good, middle)


# -- figures -------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def cost_ms(rows: Sequence[Sample]) -> float:
    return median([s.cost_ms for s in rows])


def paired_ratio(base: Sequence[Sample], other: Sequence[Sample]) -> float:
    """Median over repeats of ``base cost / other cost``: above 1 means ``other`` is cheaper."""
    return median([b.cost_ms / o.cost_ms for b, o in zip(base, other, strict=False)])


def print_cost_table(results: dict[Variant, list[Sample]]) -> None:
    """One row per setting: cost of both kinds, ingest's cameras per core relative to bare."""
    print(
        f"  {'setting':40} {'bare':>6} {'ingest':>6} {'bare/ingest':>11}"
        f" {'cams/core bare':>14} {'ingest':>6} {'faults/frame bare':>17} {'ingest':>6}"
        f" {'redis-server':>12} {'machine busy':>12}"
    )
    for variant, ingest in results.items():
        if variant.kind != "ingest":
            continue
        bare = results.get(variant.bare(), [])
        ratio = f"{paired_ratio(bare, ingest):10.2f}x" if bare else f"{'-':>11}"
        print(
            f"  {variant.label():40} {cost_ms(bare):6.1f} {cost_ms(ingest):6.1f} {ratio}"
            f" {1000 / cost_ms(bare):14.1f} {1000 / cost_ms(ingest):6.1f}"
            f" {median([s.faults_per_frame for s in bare]):17.1f}"
            f" {median([s.faults_per_frame for s in ingest]):6.1f}"
            f" {1000 * median([s.server_cpu_s / s.video_s for s in ingest]):12.2f}"
            f" {100 * median([s.machine_busy for s in ingest]):10.0f} %"
        )


def print_comparisons(results: dict[Variant, list[Sample]], changed: dict[str, Variant]) -> None:
    """CPU per camera with one setting changed, relative to the service's defaults."""
    base = changed["service defaults"]
    print(f"  CPU relative to the service defaults ({base.label()}); above 1 costs more:")
    for name, variant in list(changed.items())[1:]:
        figures = []
        if variant.bare() != base.bare():
            bare = paired_ratio(results[variant.bare()], results[base.bare()])
            figures.append(f"bare {bare:.2f}x")
        figures.append(f"ingest {paired_ratio(results[variant], results[base]):.2f}x")
        print(f"    {name:18} {', '.join(figures)}")


def print_capacity_row(sample: Sample) -> None:
    verdict = "keeps up" if sample.keeps_up else "FALLS BEHIND or saturates the CPU"
    print(
        f"  {sample.cameras:3d} cameras: CPU {sample.cpu_share * 100:5.1f} % of {CPUS} cores"
        f" (machine {sample.machine_busy * 100:3.0f} % busy),"
        f" {sample.cost_ms:5.1f} CPU-ms per video-s per camera; slowest camera reads"
        f" {sample.min_read_fps:4.1f} fps, publishes {sample.min_published_fps:4.2f} fps:"
        f" {verdict}",
        flush=True,
    )


def print_summary(bench: Bench, base: Variant) -> None:
    """Ingest's cameras per core relative to the bare loop's, and the capacity found."""
    opencv_bare = Variant("bare", decoder_threads=CPUS, cv_threads=CPUS)
    print(f"\nSummary (ingest with the service defaults: {base.label()})")
    for name, results in (("unpaced", bench.unpaced), ("paced", bench.paced)):
        same = paired_ratio(results[base.bare()], results[base])
        default = paired_ratio(results[opencv_bare], results[base])
        print(
            f"  {name:8} ingest runs {same:.2f}x the cameras per core of a bare read() loop"
            f" with the same decoder threads, {default:.2f}x of one with OpenCV's defaults"
            f" (goal >= 1.0x)"
        )
    sustained = max((s.cameras for s in bench.capacity if s.keeps_up), default=0)
    failed = min((s.cameras for s in bench.capacity if not s.keeps_up), default=0)
    busy = median([s.machine_busy for s in bench.capacity]) * 100
    paced_ms = cost_ms(bench.paced[base])
    print(
        f"  sustained: {sustained if failed else f'at least {sustained}'} cameras 720p25 -> 5 fps"
        f" on this {CPUS}-core machine ({failed or 'none, up to --max-cameras,'} failed;"
        f" machine {busy:.0f} % busy during the search)"
    )
    print(
        f"  {CPUS * 1000 / paced_ms:.0f} cameras if ingest had every core to itself"
        f" ({CPUS} cores / {paced_ms:.1f} CPU-ms per video-s, the paced cost)"
    )


def write_json(bench: Bench, path: Path, args: argparse.Namespace) -> None:
    def rows(results: dict[Variant, list[Sample]]) -> list[dict[str, Any]]:
        return [
            {**asdict(variant), "samples": [asdict(s) | {"cost_ms": s.cost_ms} for s in samples]}
            for variant, samples in results.items()
        ]

    data = {
        "clip": str(bench.clip), "cpus": CPUS, "repeat": args.repeat, "seconds": args.seconds,
        "unpaced": rows(bench.unpaced), "paced": rows(bench.paced),
        "capacity": [asdict(s) | {"keeps_up": s.keeps_up} for s in bench.capacity],
    }  # fmt: skip
    path.write_text(json.dumps(data, indent=1))
    print(f"wrote {path}")


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repeats of each figure (median)")
    parser.add_argument("--seconds", type=float, default=5.0, help="window of each paced run")
    parser.add_argument("--quick", action="store_true", help="1 repeat, 3 s windows")
    parser.add_argument("--json", type=Path, help="also write every sample to this file")
    parser.add_argument(
        "--redis-url", default="redis://127.0.0.1:6379/14", help="database to use; it is flushed"
    )
    parser.add_argument("--paced-cameras", type=int, default=4, help="cameras per paced run")
    parser.add_argument("--max-cameras", type=int, default=256, help="capacity search limit")
    parser.add_argument("--child", choices=("unpaced", "paced", "threads"), help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--clip", help=argparse.SUPPRESS)
    parser.add_argument("--cameras", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def use_repo_packages() -> None:
    """This file is ``bench/ingest.py``: keep ``import ingest`` from finding it instead."""
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(REPO_ROOT))


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def print_header(bench: Bench, args: argparse.Namespace) -> None:
    print(f"clip: {bench.clip} ({describe_clip(bench.clip)})")
    print(
        f"machine: {CPUS} CPUs, load {os.getloadavg()[0]:.2f}, OpenCV {cv2.__version__},"
        f" Redis {args.redis_url}; repeat {args.repeat}, paced windows {args.seconds:g} s"
    )
    probes: dict[str, tuple[str, dict[str, str]]] = {
        "cv2.VideoCapture": ("bare", {}),
        "with capture option threads;1": ("bare", {"OPENCV_FFMPEG_CAPTURE_OPTIONS": "threads;1"}),
        "with OPENCV_FFMPEG_THREADS=1": ("bare", {"OPENCV_FFMPEG_THREADS": "1"}),
        "ingest's OpenCVSource": ("ingest", {}),
    }
    counts = [f"{name} {bench.decoder_threads(*probe)}" for name, probe in probes.items()]
    print(f"OS threads that one open capture adds (FFmpeg decoder threads): {', '.join(counts)}")
    print("costs: CPU-ms per second of video per camera; cams/core = 1000 / cost\n", flush=True)


def report(bench: Bench, args: argparse.Namespace) -> None:
    base = service_defaults()
    print("Unpaced: one camera reads the whole clip as fast as it can", flush=True)
    changed = changed_settings(base, allocators=True)
    for variant in interleaved(with_bare(list(changed.values())), args.repeat):
        bench.unpaced.setdefault(variant, []).append(bench.run("unpaced", variant))
    print_cost_table(bench.unpaced)
    print_comparisons(bench.unpaced, changed)

    cameras = args.paced_cameras
    print(
        f"\nPaced to real time: {cameras} cameras per process, {args.seconds:g} s windows, glibc",
        flush=True,
    )
    changed = changed_settings(base, allocators=False)
    for variant in interleaved(with_bare(list(changed.values())), args.repeat):
        sample = bench.run("paced", variant, cameras=cameras, seconds=args.seconds)
        bench.paced.setdefault(variant, []).append(sample)
    print_cost_table(bench.paced)
    print_comparisons(bench.paced, changed)

    print(f"\nCapacity: N cameras through one IngestService at real-time pace ({base.label()})")
    limit = args.max_cameras
    run_capacity(bench, base, seconds=args.seconds, max_cameras=limit, report=print_capacity_row)
    print_summary(bench, base)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    use_repo_packages()
    if args.child:
        run_child(args)
        return
    if args.quick:
        args.repeat, args.seconds = 1, 3.0
    if not Path(TCMALLOC).is_file():
        ALLOCATORS.pop("tcmalloc")
    started = time.monotonic()
    bench = Bench(clip=ensure_clip(), redis_url=args.redis_url)
    print_header(bench, args)
    try:
        report(bench, args)
    finally:
        flush_redis(args.redis_url)
    if args.json:
        write_json(bench, args.json, args)
    print(f"(total {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
