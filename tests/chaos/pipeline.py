"""The deployed pipeline for chaos tests and the soak: `python -m vigil ingest|detect|alerts -c CONFIG`
as real processes on a private Redis, the bundled clip as a looping file camera, and raw ZeroMQ SUB
sockets of our own that keep every event they receive.

Nothing here is mocked: a fault is a real ``kill -9``, a real Redis server stopped and started again,
a real RTSP server going away.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
import zmq

from alerts.events import event_id
from alerts.history import history_since
from shared import keys
from shared.config import RedisConfig
from shared.redis import REDIS_DOWN, connect, free_port
from shared.schemas import AlertEvent, Detections

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "pistols.mp4"
"""The bundled clip: 30 s at 10 fps, twelve pictures of pistols for 2.5 s each."""
CAMERA = "gate"
FPS = 5
SERVICES = ("ingest", "detect", "alerts")
LEASE_TTL_S = 2.0
"""Short leases: a replica started after a kill -9 takes its cameras within this (plus a round)."""
END_AFTER_S = 3.0
"""The default gun rule's ``end_after_s``: an open alert ends this long after its track's last hit."""
COOLDOWN_S = 30.0
"""The default gun rule's ``cooldown_s``: no new ``started`` for a track within this of its last."""


def pipeline_config(
    redis_url: str,
    endpoint: str,
    *,
    cameras: Sequence[dict[str, Any]] | None = None,
    metrics_ports: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The one config file all three services read (the bundled clip in a loop at 5 fps by default)."""
    ports: dict[str, int | None] = {service: None for service in SERVICES}
    ports.update(metrics_ports or {})
    service = {"lease_ttl_s": LEASE_TTL_S}
    return {
        "redis": {"url": redis_url, "connect_timeout_s": 1.0, "socket_timeout_s": 3.0},
        "logging": {"level": "INFO"},
        "ingest": {**service, "metrics_port": ports["ingest"], "open_timeout_s": 3.0, "read_timeout_s": 3.0,
                   "reconnect_base_s": 0.2, "reconnect_cap_s": 1.0, "registry_interval_s": 0.5},
        "detector": {**service, "metrics_port": ports["detect"], "torch_threads": 1},
        "alerts": {**service, "metrics_port": ports["alerts"], "publish_endpoint": endpoint},
        "cameras": list(cameras) if cameras is not None
        else [{"id": CAMERA, "url": str(SAMPLE), "fps": FPS, "loop": True}],
    }  # fmt: skip


class Pipeline:
    """The three services as child processes sharing one config file; logs go to ``folder``."""

    def __init__(
        self,
        folder: Path,
        redis_url: str,
        *,
        cameras: Sequence[dict[str, Any]] | None = None,
        metrics_ports: dict[str, int] | None = None,
    ) -> None:
        self.folder = folder
        self.redis_url = redis_url
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.config = folder / "vigil.yaml"
        settings = pipeline_config(redis_url, self.endpoint, cameras=cameras, metrics_ports=metrics_ports)
        self.config.write_text(yaml.safe_dump(settings))
        self.cameras = [camera["id"] for camera in settings["cameras"]]
        self.client = connect(RedisConfig(url=redis_url, socket_timeout_s=3.0))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: Counter[str] = Counter()
        self.down: set[str] = set()
        """Services stopped or killed on purpose (not expected to be running)."""

    # -- processes -------------------------------------------------------------------------------

    def start(self, service: str) -> subprocess.Popen[bytes]:
        """Start ``vigil <service>`` (a second start of a service appends to the same log)."""
        assert service not in self.procs or self.procs[service].poll() is not None, f"{service} runs"
        self.starts[service] += 1
        self.down.discard(service)
        with (self.folder / f"{service}.log").open("ab") as log:
            log.write(f"=== start {self.starts[service]}\n".encode())
            log.flush()
            self.procs[service] = subprocess.Popen(
                [sys.executable, "-m", "vigil", service, "-c", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        return self.procs[service]

    def start_all(self, *, timeout_s: float = 90) -> None:
        """alerts and detect first; ingest once the detector holds the cameras (its model is loaded)."""
        self.start("alerts")
        self.start("detect")
        taken = lambda: all(self.owner("detect", camera) for camera in self.cameras)  # noqa: E731
        self.wait(taken, timeout_s, "the detector took the cameras")
        self.start("ingest")

    def kill(self, service: str) -> None:
        """``kill -9`` and reap."""
        self.down.add(service)
        proc = self.procs[service]
        proc.kill()
        proc.wait(timeout=10)

    def stop(self, service: str, *, timeout_s: float = 30) -> int:
        """SIGTERM, as an orchestrator stops a service; its exit status."""
        self.down.add(service)
        proc = self.procs[service]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return self._reap(service, timeout_s=timeout_s)

    def _reap(self, service: str, *, timeout_s: float = 30) -> int:
        """Wait for the process (a second SIGTERM would kill it mid-drain: the handler is gone)."""
        proc = self.procs[service]
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return -9

    def close(self) -> dict[str, int]:
        """Stop every running service with SIGTERM (concurrently); the exit statuses."""
        running = [name for name, proc in self.procs.items() if proc.poll() is None]
        for name in running:
            self.procs[name].send_signal(signal.SIGTERM)
        codes = {name: self._reap(name) for name in running}
        self.client.close()
        return codes

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.procs.items() if proc.poll() is None}

    def assert_alive(self, *services: str) -> None:
        """The services (default: all not stopped on purpose) are running."""
        for name in services or tuple(set(self.procs) - self.down):
            code = self.procs[name].poll()
            assert code is None, f"{name} exited with {code}\n{self.logs()}"

    def logs(self, tail: int = 4000) -> str:
        logs = sorted(self.folder.glob("*.log"))
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-tail:]}" for log in logs)

    def wait(self, predicate: Callable[[], object], timeout_s: float, what: str) -> None:
        """Poll ``predicate`` (Redis being down counts as not yet) until true; fail with the logs, or
        as soon as a service that should be running has exited."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if predicate():
                    return
            except REDIS_DOWN:
                pass
            self.assert_alive()
            assert time.monotonic() < deadline, f"not within {timeout_s:g} s: {what}\n{self.logs()}"
            time.sleep(0.2)

    # -- what Redis says -------------------------------------------------------------------------

    def owner(self, group: str, camera: str = CAMERA) -> bytes | None:
        return self.client.get(keys.lease_key(group, camera))

    def newest_frame_ms(self, camera: str = CAMERA) -> int:
        """Redis time (ms) of the camera's newest frame entry; 0 if none."""
        newest = self.client.xrevrange(keys.frames_stream(camera), count=1)
        return int(newest[0][0].split(b"-")[0]) if newest else 0

    def detections_after(self, ts_ns: int, camera: str = CAMERA) -> list[Detections]:
        """The camera's detections entries for frames captured after ``ts_ns``."""
        entries = self.client.xrange(keys.detections_stream(camera), min=f"{ts_ns // 1_000_000}-0")
        decoded = [Detections.decode(fields) for _id, fields in entries]
        return [d for d in decoded if d.ts_ns > ts_ns]

    def history(self) -> list[AlertEvent]:
        return list(history_since(self.client, 0))


class EventCollector:
    """A raw ZeroMQ SUB socket (its own context and thread) that keeps every event it receives, in
    order, duplicates included: it checks delivery, so it must not hide a double."""

    def __init__(self, endpoint: str, *, name: str) -> None:
        self.endpoint = endpoint
        self.events: list[AlertEvent] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self.name = name
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> EventCollector:
        self._thread.start()
        assert self._connected.wait(10), "the subscriber did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        context = zmq.Context()
        sock = context.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 500)
        sock.setsockopt(zmq.SUBSCRIBE, b"alert.")
        sock.connect(self.endpoint)
        self._connected.set()
        try:
            while not self._stop.is_set():
                if not sock.poll(100):
                    continue
                _topic, body = sock.recv_multipart()
                event = AlertEvent.from_json(body)
                with self._lock:
                    self.events.append(event)
        finally:
            sock.close(linger=0)
            context.term()

    def snapshot(self) -> list[AlertEvent]:
        with self._lock:
            return list(self.events)

    def started_after(self, ts_ns: int) -> list[AlertEvent]:
        return [e for e in self.snapshot() if e.kind == "started" and e.ts_ns > ts_ns]


# -- checks ---------------------------------------------------------------------------------------


def ended_id(started: AlertEvent) -> str:
    """The id the ``ended`` event of a ``started`` one has (same camera, track, rule, first frame)."""
    return event_id(started.camera, started.track_id, started.rule, started.seq, "ended")


def doubled(ids: Iterable[str]) -> dict[str, int]:
    """Ids seen more than once, with their counts."""
    return {key: count for key, count in Counter(ids).items() if count > 1}


def unended(events: Sequence[AlertEvent]) -> list[AlertEvent]:
    """``started`` events whose ``ended`` is not among ``events``."""
    ids = {event.event_id for event in events}
    return [e for e in events if e.kind == "started" and ended_id(e) not in ids]


def describe(events: Sequence[AlertEvent]) -> str:
    return "\n".join(
        f"  {e.kind:8s} {e.event_id} track={e.track_id} seq={e.seq} ts={e.ts_ns / 1e9:.2f}" for e in events
    )


def restarted_under_new_ids(events: Sequence[AlertEvent], *, cooldown_s: float) -> list[AlertEvent]:
    """``started`` events of a (camera, rule, track) within ``cooldown_s`` of its previous one: the
    rules never start a track's alert again that soon, so each is one alert delivered twice under
    two ids (re-derived from a different first frame)."""
    last: dict[tuple[str, str, int | None], AlertEvent] = {}
    again = []
    for event in sorted((e for e in events if e.kind == "started"), key=lambda e: e.ts_ns):
        key = (event.camera, event.rule, event.track_id)
        previous = last.get(key)
        if previous is not None and event.ts_ns - previous.ts_ns < cooldown_s * 1e9:
            again.append(event)
        last[key] = event
    return again


def drain(pipeline: Pipeline, subscribers: Sequence[EventCollector], *, margin_s: float = 15.0) -> None:
    """Stop ingest (no more pistols) and wait until every ``started`` has its ``ended``, at each
    subscriber and in the history: the alerts sweep ends them ``end_after_s`` after the last frame."""
    assert pipeline.stop("ingest") == 0, "ingest obeys SIGTERM\n" + pipeline.logs()

    def all_ended() -> bool:
        return not unended(pipeline.history()) and not any(unended(s.snapshot()) for s in subscribers)

    pipeline.wait(all_ended, END_AFTER_S + margin_s, "every started event has its ended")


def assert_delivered_once(
    pipeline: Pipeline, subscribers: Sequence[EventCollector], *, before: Sequence[AlertEvent] = ()
) -> list[AlertEvent]:
    """No id twice at any subscriber or in the history; every event of ``before`` (the history
    before the fault) still in it; every recorded event at every subscriber, each ``started`` with
    its ``ended``. Returns the history."""
    history = pipeline.history()
    assert history, "alerts were recorded\n" + pipeline.logs()
    assert doubled(e.event_id for e in history) == {}, "an event recorded twice:\n" + describe(history)
    kept = {e.event_id for e in history}
    lost = [e for e in before if e.event_id not in kept]
    assert not lost, "recorded before the fault, not replayable after it:\n" + describe(lost)
    assert not unended(history), "started without ended in the history:\n" + describe(unended(history))
    for subscriber in subscribers:
        name, events = subscriber.name, subscriber.snapshot()
        received = {e.event_id for e in events}
        assert doubled(e.event_id for e in events) == {}, f"{name}: an id twice:\n{describe(events)}"
        missed = [e for e in history if e.event_id not in received]
        assert not missed, f"{name}: recorded, never delivered:\n{describe(missed)}"
        assert not unended(events), f"{name}: started without ended:\n{describe(unended(events))}"
    return history


def started_twice(subscribers: Sequence[EventCollector]) -> str:
    """A description of the alerts some subscriber received a second ``started`` for (empty: none)."""
    found = []
    for subscriber in subscribers:
        events = subscriber.snapshot()
        if again := restarted_under_new_ids(events, cooldown_s=COOLDOWN_S):
            found.append(f"{subscriber.name}: started again:\n{describe(again)}\nall:\n{describe(events)}")
    return "\n".join(found)
