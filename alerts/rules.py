"""The rules engine: detections in, ``started``/``ended`` alert events out.

Pure: no Redis, no ZeroMQ, no wall clock. Time is *frame time*, the ``ts_ns`` of each camera's
messages (never going back: an older stamp keeps the camera's latest), so replaying the same
detections gives the same events with the same ids. Only :meth:`RuleEngine.sweep` is told the time
from outside, to close alerts of a camera that has stopped sending.

Per (rule, camera, track)::

    qualifying frame: label in rule.labels, score >= min_score, inside one of the rule's zones,
        and with ``verify``: verify_score >= verify_min_score (unverified: suppressed, reason "verify")
    k of the camera's last n frames qualify, no open alert ──────────────────▶ started
        (within cooldown_s of the last started: suppressed, reason "cooldown")
    open alert, no qualifying frame for end_after_s (lost, or left the zone) ─▶ ended

The k-of-n window counts the frames that reach the engine (every ``Detections`` message of the
camera, with or without objects), not sequence numbers: frames the detector skipped are no
evidence either way. Tentative tracks (``track_id is None``) cannot build persistence and are
ignored. A message whose ``seq`` and ``ts_ns`` are both no newer than the camera's last one is a
replay or out of order and is ignored whole (reported through ``on_stale``).

Memory: state exists only for tracks that qualified. :meth:`process` forgets a track once it can no
longer change an outcome (no open alert, no qualifying frame left in its window, cooldown over,
all in frame time); :meth:`sweep` forgets the tracks of cameras silent for
max(end_after_s, cooldown_s).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from alerts.events import alert_event, normalise_box
from alerts.zones import Zone
from shared.config import AlertRuleConfig, AlertsConfig
from shared.schemas import AlertEvent, Box, Detection, Detections

SuppressReason = Literal["score", "zone", "verify", "persistence", "cooldown", "storm"]
OnSuppressed = Callable[[str, str, SuppressReason], None]
OnStale = Callable[[str], None]


SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class StormLimit:
    """At most ``max_started`` ``started`` events per camera in any ``window_s`` of frame time; what
    it holds back is suppressed with reason ``storm`` (and may start later, once the window moves)."""

    max_started: int
    window_s: float


def _ns(seconds: float) -> int:
    return round(seconds * 1_000_000_000)


@dataclass
class _Sighting:
    """A qualifying object and the frame it was seen in."""

    detection: Detection
    frame_size: tuple[int, int]
    ts_ns: int
    seq: int


@dataclass
class _OpenAlert:
    first_seq: int
    first_seen_ns: int


@dataclass
class _TrackState:
    """One (rule, camera, track): its qualifying frames in the window, its alert and its cooldown."""

    last_hit: _Sighting
    hits: deque[tuple[int, int]] = field(default_factory=deque)  # (frame number, ts_ns), oldest first
    alert: _OpenAlert | None = None
    started_ns: int | None = None


@dataclass
class _CameraState:
    seq: int
    ts_ns: int
    frames: int = 0  # messages processed: the clock of the k-of-n windows
    started_ns: deque[int] = field(default_factory=deque)  # ts_ns of its recent 'started' events
    tracks: dict[tuple[str, int], _TrackState] = field(default_factory=dict)  # (rule, track id) →


class RuleEngine:
    """Evaluates ``rules`` on each camera's detections; ``zones`` is camera id → zone name → Zone.

    ``on_suppressed(rule, label, reason)`` is called at most once per object, rule and frame for
    objects of a label the rule watches that did not start an alert (and are not part of an open one).
    ``on_stale(camera)`` is called for each message ignored as a replay or out of order. Rule names
    are unique (``AlertsConfig`` checks it): they key the per-track state and the event ids.

    With a ``storm`` limit, a frame with a thousand qualifying tracks cannot raise a thousand alerts:
    rules are evaluated most severe first (config order within a severity) and, within a rule, the
    highest-scoring tracks first, so the cap keeps the first and the most severe.
    """

    def __init__(
        self,
        rules: Sequence[AlertRuleConfig],
        zones: Mapping[str, Mapping[str, Zone]],
        *,
        on_suppressed: OnSuppressed | None = None,
        on_stale: OnStale | None = None,
        storm: StormLimit | None = None,
    ) -> None:
        self._rules = tuple(sorted(rules, key=lambda rule: SEVERITY_RANK[rule.severity]))
        self._storm = storm
        self._rule_by_name = {rule.name: rule for rule in rules}
        self._zones = {camera: dict(by_name) for camera, by_name in zones.items()}
        self._on_suppressed = on_suppressed
        self._on_stale = on_stale
        self._cameras: dict[str, _CameraState] = {}

    @classmethod
    def from_config(
        cls,
        config: AlertsConfig,
        zones: Mapping[str, Mapping[str, Zone]],
        *,
        on_suppressed: OnSuppressed | None = None,
        on_stale: OnStale | None = None,
    ) -> RuleEngine:
        """The engine of an alerts service configured by ``config``: its rules and its storm limit."""
        storm = StormLimit(max_started=config.storm_max_started, window_s=config.storm_window_s)
        return cls(config.rules, zones, on_suppressed=on_suppressed, on_stale=on_stale, storm=storm)

    @property
    def tracked(self) -> int:
        """How many (rule, camera, track) states are held (the memory the engine holds)."""
        return sum(len(camera.tracks) for camera in self._cameras.values())

    def zones_for(self, rule: AlertRuleConfig, camera: str) -> tuple[Zone, ...] | None:
        """The rule's zones on ``camera`` (``()``: the whole frame), or None if the rule skips it."""
        if rule.cameras and camera not in rule.cameras:
            return None
        if not rule.zones:
            return ()
        defined = self._zones.get(camera, {})
        return tuple(defined[name] for name in rule.zones if name in defined) or None

    def process(self, message: Detections) -> list[AlertEvent]:
        """Evaluate every rule on one frame's detections; the events it causes, in rule order."""
        camera = self._advance(message)
        if camera is None:
            return []
        events: list[AlertEvent] = []
        for rule in self._rules:
            zones = self.zones_for(rule, message.camera)
            if zones is not None:
                events.extend(self._evaluate(rule, zones, message, camera))
        events.extend(self._expire(message.camera, camera))
        return events

    def restore(self, camera: str, events: Iterable[AlertEvent]) -> None:
        """Seed ``camera``'s track states from its recorded events (oldest first), before its
        detections are evaluated again after a take-over.

        A re-evaluation that starts in the middle of an alert would otherwise see the track anew,
        fire it again at a later frame and so under new ids, about a warm-up late. Seeded, an alert
        recorded as ``started`` (and not ``ended``) stays the same open alert and ends under its own
        pair of ids, and a track that alerted keeps its cooldown."""
        state = self._cameras.get(camera)
        if state is None:  # seq -1: the first message after this is new, whatever its seq
            state = self._cameras[camera] = _CameraState(seq=-1, ts_ns=0)
        for event in events:
            rule = self._rule_by_name.get(event.rule)
            if event.camera != camera or rule is None or event.track_id is None:
                continue
            key = (rule.name, event.track_id)
            if event.kind == "started":
                detection = Detection(label=event.label, class_id=-1, score=event.score, box=event.box,
                                      track_id=event.track_id)  # fmt: skip
                sighting = _Sighting(
                    detection, (event.frame_width, event.frame_height), event.ts_ns, event.seq
                )
                alert = _OpenAlert(first_seq=event.seq, first_seen_ns=event.first_seen_ns)
                state.tracks[key] = _TrackState(last_hit=sighting, alert=alert, started_ns=event.ts_ns)
            elif (
                (track := state.tracks.get(key))
                and track.alert
                and track.alert.first_seen_ns == event.first_seen_ns
            ):
                track.alert = None

    def sweep(self, now_ns: int) -> list[AlertEvent]:
        """Close the alerts of cameras silent for end_after_s at ``now_ns`` (a clock comparable to the
        frames' ``ts_ns``), and forget tracks of cameras silent for max(end_after_s, cooldown_s)."""
        events: list[AlertEvent] = []
        for camera_id, camera in self._cameras.items():
            silent_ns = now_ns - camera.ts_ns
            for key, track in list(camera.tracks.items()):
                rule = self._rule_by_name[key[0]]
                if track.alert is not None and silent_ns >= _ns(rule.end_after_s):
                    events.append(self._ended(rule, camera_id, track, ts_ns=now_ns, seq=camera.seq))
                if track.alert is None and silent_ns >= _ns(max(rule.end_after_s, rule.cooldown_s)):
                    del camera.tracks[key]
        return events

    def drop_camera(self, camera: str) -> list[AlertEvent]:
        """Forget ``camera`` (its ownership moved). Returns ``ended`` events for its open alerts, stamped
        with its last frame; the caller decides whether to publish them."""
        state = self._cameras.pop(camera, None)
        if state is None:
            return []
        return [
            self._ended(self._rule_by_name[rule_name], camera, track, ts_ns=state.ts_ns, seq=state.seq)
            for (rule_name, _), track in state.tracks.items()
            if track.alert is not None
        ]

    def _advance(self, message: Detections) -> _CameraState | None:
        """Move the camera's clock to this message; None if it is a replay or older than the last."""
        camera = self._cameras.get(message.camera)
        if camera is None:
            camera = self._cameras[message.camera] = _CameraState(seq=message.seq, ts_ns=message.ts_ns)
        elif message.seq <= camera.seq and message.ts_ns <= camera.ts_ns:
            if self._on_stale is not None:
                self._on_stale(message.camera)
            return None
        else:
            camera.seq = message.seq
            camera.ts_ns = max(camera.ts_ns, message.ts_ns)
        camera.frames += 1
        return camera

    def _evaluate(
        self, rule: AlertRuleConfig, zones: tuple[Zone, ...], message: Detections, camera: _CameraState
    ) -> list[AlertEvent]:
        frame_size = (message.width, message.height)
        best: dict[int, Detection] = {}
        for obj in message.objects:
            if obj.track_id is None or obj.label not in rule.labels:
                continue
            if obj.score < rule.min_score:
                self._suppress(rule, obj, "score")
            elif not _in_zone(rule, zones, normalise_box(obj.box, *frame_size)):
                self._suppress(rule, obj, "zone")
            elif not _verified(rule, obj):
                self._suppress(rule, obj, "verify")
            elif obj.track_id not in best or obj.score > best[obj.track_id].score:
                best[obj.track_id] = obj  # a tracker gives one object per track; keep the best if not
        events = []
        for track_id, obj in sorted(best.items(), key=lambda item: (-item[1].score, item[0])):
            sighting = _Sighting(obj, frame_size, camera.ts_ns, message.seq)
            event = self._qualified(rule, message.camera, camera, track_id, sighting)
            if event is not None:
                events.append(event)
        return events

    def _qualified(
        self, rule: AlertRuleConfig, camera_id: str, camera: _CameraState, track_id: int, sighting: _Sighting
    ) -> AlertEvent | None:
        """Count a qualifying frame for the track; a ``started`` event if that completes k of n."""
        track = camera.tracks.setdefault((rule.name, track_id), _TrackState(last_hit=sighting))
        track.last_hit = sighting
        track.hits.append((camera.frames, sighting.ts_ns))
        while track.hits[0][0] <= camera.frames - rule.persistence_n:
            track.hits.popleft()
        if track.alert is not None:
            return None
        if len(track.hits) < rule.persistence_k:
            self._suppress(rule, sighting.detection, "persistence")
            return None
        if track.started_ns is not None and sighting.ts_ns - track.started_ns < _ns(rule.cooldown_s):
            self._suppress(rule, sighting.detection, "cooldown")
            return None
        if self._storm_full(camera, sighting.ts_ns):
            self._suppress(rule, sighting.detection, "storm")
            return None
        track.alert = _OpenAlert(first_seq=sighting.seq, first_seen_ns=track.hits[0][1])
        track.started_ns = sighting.ts_ns
        camera.started_ns.append(sighting.ts_ns)
        return alert_event(
            "started",
            rule=rule,
            camera=camera_id,
            detection=sighting.detection,
            frame_size=sighting.frame_size,
            first_seq=sighting.seq,
            first_seen_ns=track.alert.first_seen_ns,
            ts_ns=sighting.ts_ns,
            seq=sighting.seq,
        )

    def _storm_full(self, camera: _CameraState, ts_ns: int) -> bool:
        """Whether the camera's storm window at ``ts_ns`` already holds its maximum of 'started'."""
        if self._storm is None:
            return False
        window_ns = _ns(self._storm.window_s)
        while camera.started_ns and ts_ns - camera.started_ns[0] >= window_ns:
            camera.started_ns.popleft()
        return len(camera.started_ns) >= self._storm.max_started

    def _expire(self, camera_id: str, camera: _CameraState) -> list[AlertEvent]:
        """End alerts whose track has not qualified for end_after_s; forget tracks that cannot matter."""
        events = []
        for key, track in list(camera.tracks.items()):
            rule = self._rule_by_name[key[0]]
            if track.alert is not None:
                if camera.ts_ns - track.last_hit.ts_ns >= _ns(rule.end_after_s):
                    events.append(self._ended(rule, camera_id, track, ts_ns=camera.ts_ns, seq=camera.seq))
            elif _forgettable(rule, camera, track):
                del camera.tracks[key]
        return events

    def _ended(
        self, rule: AlertRuleConfig, camera_id: str, track: _TrackState, *, ts_ns: int, seq: int
    ) -> AlertEvent:
        """Close the track's alert: an ``ended`` event with its last qualifying box, paired by id."""
        alert, last = track.alert, track.last_hit
        if alert is None:
            raise ValueError("no open alert to end")
        track.alert = None
        return alert_event(
            "ended",
            rule=rule,
            camera=camera_id,
            detection=last.detection,
            frame_size=last.frame_size,
            first_seq=alert.first_seq,
            first_seen_ns=alert.first_seen_ns,
            ts_ns=ts_ns,
            seq=seq,
        )

    def _suppress(self, rule: AlertRuleConfig, obj: Detection, reason: SuppressReason) -> None:
        if self._on_suppressed is not None:
            self._on_suppressed(rule.name, obj.label, reason)


def replay(engine: RuleEngine, messages: Iterable[Detections]) -> list[AlertEvent]:
    """The events an alerts service that keeps up derives from ``messages`` (in stream order).

    Caught up, the service sweeps on its own clock while it waits for the next entry
    (``AlertService.work``), so a camera silent for ``end_after_s`` has its alerts ended before its
    next frame is evaluated. Here each message is evaluated after a sweep at the time it was
    published: its ``ts_ns`` plus its ``timings_ms["total"]`` (capture to published)."""
    events: list[AlertEvent] = []
    for message in messages:
        events += engine.sweep(message.ts_ns + round(message.timings_ms.get("total", 0.0) * 1e6))
        events += engine.process(message)
    return events


def _in_zone(rule: AlertRuleConfig, zones: tuple[Zone, ...], box_norm: Box) -> bool:
    """Whether the box is in any of the rule's zones (no zones: the whole frame)."""
    if not rule.zones:
        return True
    if rule.zone_mode == "bottom_center":
        x, y = (box_norm[0] + box_norm[2]) / 2, box_norm[3]
        return any(zone.contains(x, y) for zone in zones)
    return any(zone.overlap(box_norm) >= rule.min_overlap for zone in zones)


def _verified(rule: AlertRuleConfig, obj: Detection) -> bool:
    """Whether the rule takes the object's verification: always without ``verify``."""
    if not rule.verify:
        return True
    return obj.verify_score is not None and obj.verify_score >= rule.verify_min_score


def _forgettable(rule: AlertRuleConfig, camera: _CameraState, track: _TrackState) -> bool:
    """No open alert, no qualifying frame left in the k-of-n window, and the cooldown is over."""
    in_window = bool(track.hits) and track.hits[-1][0] > camera.frames - rule.persistence_n
    cooling = track.started_ns is not None and camera.ts_ns - track.started_ns < _ns(rule.cooldown_s)
    return track.alert is None and not in_window and not cooling
