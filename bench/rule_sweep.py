"""Offline sweep of the alert rule: score, k-of-n persistence, end_after_s and cooldown_s.

Each tuning clip (``sample`` and ``small``, with pistols, and ``one-by-one-1``, without: every alert
there is false; bench/alert_quality.py) plays ONCE through the real
services, as alert_quality plays it (its ``play``), and what the detector published (every
Detections message, with the tracker's ids, and each frame's pts) is cached as JSON in
alert_quality's cache folder, keyed by clip (and its bytes), weights sha256, engine, detector
score floor, max_side, fps and regions; ``--refresh`` plays again. The rule plays no part upstream
of the detections stream (the detector keeps every box of score >= ``DEMO_SCORE_THRESH``, and the
tracker, the motion gate's hold and the region crops follow those boxes, not the rule), so one
play serves every setting whose ``min_score`` is at or above that floor; lower ones are refused.

Each rule setting of the grid is then replayed: the cached messages, in stream order, through the
alerts service's own :class:`~alerts.rules.RuleEngine` (``RuleEngine.from_config`` on an
``AlertsConfig`` holding the setting, and ``alerts.rules.replay``), and its ``started`` events are
scored by alert_quality's ``score``. A replayed alert's latency is its frame's capture-to-published
time (``timings_ms["total"]``); the alerts service and ZeroMQ add milliseconds to it. The shipped
rule's replay is checked against the alerts the played run raised.

Rows on the trade-off front (no other setting alerts as many appearances with as few false alerts,
over all clips, and is better on one of the two, or equal on both and quicker at p50) come first,
most alerted first; the others follow, most alerted, then fewest false alerts, then the quickest.

``vtest`` and ``one-by-one-2`` are test-only footage and are refused.

    nice -n 5 .venv/bin/python bench/rule_sweep.py
    .venv/bin/python bench/rule_sweep.py --scores 0.5,0.6 --k 2,3 --n 5 --end-after 3 --cooldown 30 \\
        --json /tmp/sweep.json
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.rules import RuleEngine, replay
from alerts.zones import zones_by_camera
from bench._cpu import describe_cpu
from bench.alert_quality import (
    CLIP_NAMES,
    TEST_ONLY,
    Run,
    Score,
    Truth,
    add_play_arguments,
    cache_dir,
    clip,
    clip_seconds,
    percentile,
    play,
    score,
)
from detector.engines.cache import file_sha256
from detector.runner import DEFAULT_WEIGHTS, DetectorRunner
from shared.config import AlertRuleConfig, AlertsConfig, CameraConfig, DetectorConfig, RegionsConfig
from shared.schemas import AlertEvent, Detections
from vigil.demo import DEMO_SCORE_THRESH

TUNING = tuple(name for name in CLIP_NAMES if name not in TEST_ONLY)
CACHE_FORMAT = 1
"""Bump when the cached document changes meaning."""


@dataclass(frozen=True)
class Played:
    """A tuning clip played once through the services: what every setting is replayed on."""

    name: str
    camera: CameraConfig
    truth: Truth | None
    """None: no pistol in the clip (every alert is false)."""
    seconds: float
    run: Run


# ----------------------------------------------------------------------------- the cached play


def cache_path(key: dict[str, object]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / "rule-sweep" / f"{key['clip']}-{digest}.json"


def save_run(path: Path, key: dict[str, object], run: Run) -> None:
    """The run as JSON: detections as their stream entries, alerts as their wire JSON."""
    doc = {
        "key": key,
        "pts_ms": {str(seq): pts for seq, pts in run.pts_ms.items()},
        "detections": [message.encode() for message in run.detections],
        "alerts": [[event.to_json(), latency] for event, latency in run.alerts],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(doc))
    path.with_suffix(".tmp").replace(path)


def load_run(path: Path, key: dict[str, object]) -> Run | None:
    """The cached run, or None when there is none for ``key``."""
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    if doc.get("key") != key:
        return None
    return Run(
        alerts=[(AlertEvent.from_json(text), latency) for text, latency in doc["alerts"]],
        pts_ms={int(seq): pts for seq, pts in doc["pts_ms"].items()},
        detections=[Detections.decode(fields) for fields in doc["detections"]],
    )


def check_floor(name: str, run: Run) -> None:
    """Every detection at or above the detector's floor is in the run: the stream never reached its
    bound (nothing trimmed) and nothing below the floor came through."""
    if len(run.detections) >= DetectorConfig().detections_maxlen:
        raise SystemExit(f"{name}: {len(run.detections)} detections entries reach detections_maxlen: "
                         "the oldest may have been trimmed; use a shorter clip")  # fmt: skip
    scores = [obj.score for message in run.detections for obj in message.objects]
    if scores and min(scores) < DEMO_SCORE_THRESH:
        raise SystemExit(f"{name}: a detection at {min(scores)} is under the floor {DEMO_SCORE_THRESH}")


def played(name: str, runner: DetectorRunner, weights_sha256: str, regions: RegionsConfig, *, fps: float,
           max_side: int, refresh: bool) -> Played:  # fmt: skip
    """The clip's cached play, or a new one (then cached); ``weights_sha256``: the runner's checkpoint's."""
    path, truth = clip(name)
    camera = CameraConfig(id=name, url=str(path), fps=fps, max_side=max_side)
    key: dict[str, object] = {
        "format": CACHE_FORMAT, "clip": name, "clip_sha256": file_sha256(path),
        "weights_sha256": weights_sha256, "engine": runner.engine, "score_thresh": DEMO_SCORE_THRESH,
        "max_side": camera.max_side, "fps": camera.fps, "regions": regions.enabled,
    }  # fmt: skip
    cached = cache_path(key)
    run = None if refresh else load_run(cached, key)
    if run is None:
        print(f"playing {name} ({path}) through the services", flush=True)
        run = play(path, camera, runner, regions)
        check_floor(name, run)
        save_run(cached, key, run)
    else:
        print(f"{name}: cached play {cached}", flush=True)
    return Played(name, camera, truth, clip_seconds(path), run)


# ----------------------------------------------------------------------------- replay and score


def started_events(rule: AlertRuleConfig, clip_run: Played) -> list[tuple[AlertEvent, float]]:
    """The ``started`` events of ``rule`` on the clip's detections, each with its latency (s)."""
    engine = RuleEngine.from_config(AlertsConfig(rules=(rule,)), zones_by_camera((clip_run.camera,)))
    latency_s = {m.seq: m.timings_ms.get("total", 0.0) / 1000 for m in clip_run.run.detections}
    events = replay(engine, clip_run.run.detections)
    return [(event, latency_s[event.seq]) for event in events if event.kind == "started"]


def score_rule(rule: AlertRuleConfig, clip_run: Played) -> Score:
    run = Run(started_events(rule, clip_run), clip_run.run.pts_ms, clip_run.run.detections)
    return score(clip_run.name, run, clip_run.truth, clip_run.seconds, clip_run.camera.fps, rule.min_score)


def check_replay(shipped: AlertRuleConfig, clip_run: Played) -> str:
    """How the shipped rule's replay compares with the alerts the played run raised."""
    live = {event.event_id for event, _ in clip_run.run.alerts if event.kind == "started"}
    replayed = {event.event_id for event, _ in started_events(shipped, clip_run)}
    verdict = "same events" if live == replayed else "DIFFERENT events"
    return (f"{clip_run.name}: shipped rule replayed: {len(replayed)} started, the played run raised "
            f"{len(live)}, {len(live & replayed)} in common ({verdict})")  # fmt: skip


@dataclass(frozen=True)
class Total:
    """A setting's outcome over clips: appearances alerted, delays, false alerts, seconds played."""

    appearances: int
    alerted: int
    delays_s: tuple[float, ...]
    false_alerts: int
    seconds: float

    @classmethod
    def of(cls, scores: list[Score]) -> Total:
        return cls(sum(s.appearances for s in scores), sum(s.alerted for s in scores),
                   tuple(d for s in scores for d in s.delays_s),
                   sum(s.false_alerts for s in scores), sum(s.seconds for s in scores))  # fmt: skip

    @property
    def p50(self) -> float:
        value = percentile(list(self.delays_s), 50)
        return math.inf if value is None else value

    @property
    def false_per_hour(self) -> float:
        return self.false_alerts * 3600 / self.seconds if self.seconds else 0.0

    def dominates(self, other: Total) -> bool:
        """At least as many alerted and as few false alerts, better on one; or equal on both, quicker."""
        if (self.alerted, self.false_alerts) == (other.alerted, other.false_alerts):
            return self.p50 < other.p50
        return self.alerted >= other.alerted and self.false_alerts <= other.false_alerts

    def as_dict(self) -> dict[str, object]:
        return {"appearances": self.appearances, "alerted": self.alerted, "false_alerts": self.false_alerts,
                "seconds": self.seconds, "false_alerts_per_hour": self.false_per_hour,
                "delay_p50_s": percentile(list(self.delays_s), 50),
                "delay_p95_s": percentile(list(self.delays_s), 95)}  # fmt: skip

    def cells(self) -> str:
        def delay(percent: float) -> str:
            value = percentile(list(self.delays_s), percent)
            return "–" if value is None else f"{value:.2f}"

        share = f" ({100 * self.alerted / self.appearances:.0f}%)" if self.appearances else ""
        alerted = f"{self.alerted}/{self.appearances}{share}" if self.appearances else "–"
        false = f"{self.false_alerts} ({self.false_per_hour:.0f}/h)"
        return f"{alerted} | {delay(50)} | {delay(95)} | {false}"


@dataclass(frozen=True)
class Row:
    rule: AlertRuleConfig
    shipped: bool
    clips: dict[str, Total]
    combined: Total
    front: bool = False
    """No other row's combined outcome dominates this one's."""

    def order(self) -> tuple[bool, int, int, float]:
        """The front first; then most appearances alerted, fewest false alerts, the quickest (p50)."""
        return not self.front, -self.combined.alerted, self.combined.false_alerts, self.combined.p50

    def setting(self) -> str:
        r = self.rule
        k_of_n = f"{r.persistence_k} of {r.persistence_n}"
        return f"{r.min_score:.2f} | {k_of_n} | {r.end_after_s:g} | {r.cooldown_s:g}"

    def as_dict(self) -> dict[str, object]:
        r = self.rule
        return {"min_score": r.min_score, "persistence_k": r.persistence_k, "persistence_n": r.persistence_n,
                "end_after_s": r.end_after_s, "cooldown_s": r.cooldown_s, "shipped": self.shipped,
                "front": self.front,
                "clips": {name: total.as_dict() for name, total in self.clips.items()},
                "combined": self.combined.as_dict()}  # fmt: skip


def grid(shipped: AlertRuleConfig, args: argparse.Namespace) -> list[AlertRuleConfig]:
    """The shipped rule with every combination of the swept values (k <= n), and the shipped one."""
    rules = [
        AlertRuleConfig.model_validate({**shipped.model_dump(), "min_score": s, "persistence_k": k,
                                        "persistence_n": n, "end_after_s": e, "cooldown_s": c})
        for s, k, n, e, c in itertools.product(args.scores, args.k, args.n, args.end_after, args.cooldown)
        if k <= n
    ]  # fmt: skip
    return rules if shipped in rules else [*rules, shipped]


def sweep(rules: list[AlertRuleConfig], shipped: AlertRuleConfig, runs: list[Played]) -> list[Row]:
    rows = []
    for rule in rules:
        scores = [score_rule(rule, clip_run) for clip_run in runs]
        totals = {s.clip: Total.of([s]) for s in scores}
        rows.append(Row(rule, rule == shipped, totals, Total.of(scores)))
    rows = [replace(row, front=not any(other.combined.dominates(row.combined) for other in rows))
            for row in rows]  # fmt: skip
    return sorted(rows, key=Row.order)


def table(rows: list[Row], clips: list[str]) -> list[str]:
    groups = [*clips, "all"]
    header = "| | min_score | k of n | end_after_s | cooldown_s | " + " | ".join(
        f"{name} alerted | p50 s | p95 s | false (/h)" for name in groups
    ) + " |"  # fmt: skip
    lines = [header, "|" + "---|" * (5 + 4 * len(groups))]
    for row in rows:
        cells = " | ".join(row.clips[name].cells() for name in clips) + " | " + row.combined.cells()
        marks = ", ".join(mark for mark, on in (("front", row.front), ("shipped", row.shipped)) if on)
        lines.append(f"| {marks} | {row.setting()} | {cells} |")
    return lines


def front_lines(rows: list[Row]) -> list[str]:
    """One line per outcome on the front: how many settings give it, and the first of them."""
    outcomes: dict[str, list[Row]] = {}
    for row in rows:
        if row.front:
            outcomes.setdefault(row.combined.cells(), []).append(row)
    return [f"front: {cells} ({len(same)} settings, first: {same[0].setting()})"
            for cells, same in outcomes.items()]  # fmt: skip


# ----------------------------------------------------------------------------- CLI


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v]


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clips", default=",".join(TUNING), help=f"comma-separated of {', '.join(TUNING)}")
    parser.add_argument("--scores", type=floats, default=[0.4, 0.5, 0.6, 0.7], help="min_score values")
    parser.add_argument("--k", type=ints, default=[1, 2, 3], help="persistence_k values")
    parser.add_argument("--n", type=ints, default=[3, 5], help="persistence_n values")
    parser.add_argument("--end-after", type=floats, default=[2.0, 3.0, 5.0], help="end_after_s values")
    parser.add_argument("--cooldown", type=floats, default=[10.0, 30.0], help="cooldown_s values")
    parser.add_argument("--refresh", action="store_true", help="play the clips again (else the cached play)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    add_play_arguments(parser)
    args = parser.parse_args(argv)
    names = [n for n in args.clips.split(",") if n]
    if test_only := set(names) & set(TEST_ONLY):
        parser.error(f"{', '.join(sorted(test_only))}: test-only footage, never tuned on")
    if unknown := set(names) - set(TUNING):
        parser.error(f"unknown clips: {', '.join(sorted(unknown))}")
    if min(args.scores) < DEMO_SCORE_THRESH:
        parser.error(f"--scores under the detector's floor {DEMO_SCORE_THRESH} cannot be replayed")
    shipped = AlertsConfig().rules[0]
    weights = args.weights or DEFAULT_WEIGHTS
    runner = DetectorRunner(weights, engine=args.engine, score_thresh=DEMO_SCORE_THRESH)
    regions = RegionsConfig(enabled=args.regions == "on")
    cpu = describe_cpu()
    print(cpu)
    weights_sha256 = file_sha256(weights)
    print(f"weights {weights} (sha256 {weights_sha256[:12]}), engine {runner.engine}, input "
          f"{runner.input_size}; max_side {args.max_side}, {args.fps:g} fps, regions {args.regions}, "
          f"detector score floor {DEMO_SCORE_THRESH}")  # fmt: skip
    runs = [played(name, runner, weights_sha256, regions, fps=args.fps, max_side=args.max_side,
                   refresh=args.refresh) for name in names]  # fmt: skip
    for clip_run in runs:
        print(check_replay(shipped, clip_run))
    rows = sweep(grid(shipped, args), shipped, runs)
    print("\n".join(table(rows, names)))
    print("\n".join(front_lines(rows)))
    if args.json:
        doc = {"cpu": cpu, "weights": str(weights), "weights_sha256": weights_sha256,
               "engine": runner.engine, "clips": names, "rows": [row.as_dict() for row in rows]}  # fmt: skip
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
