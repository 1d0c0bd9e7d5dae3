"""Alert-level quality: what an operator sees when labelled clips play through the real services.

Each clip plays, at real time, through ingest → detect → alerts on threads of this process, wired
as ``vigil demo`` wires them (``vigil.demo.build_services`` and ``watch_until_quiet``: a real
ZeroMQ SUB socket receives the alerts), over an embedded Redis. Then, per clip:

- per gun *appearance* (a stretch of frames with a pistol on screen): alerted or not, where an
  appearance is alerted by a ``started`` event of one of its frames whose box overlaps a truth
  box of that frame at IoU >= 0.3; the time from its first frame to the alert (stream time from
  the appearance's first frame to the alerting frame, plus that frame's capture-to-delivery
  latency), p50 and p95; and how many appearances the model saw at all (a detection at the rule's
  ``min_score`` and IoU >= 0.5 in at least one frame), so model misses and rule misses are told
  apart;
- false alerts: ``started`` events that alert no appearance, and per hour of clip;
- frame-level box recall and precision at the rule's ``min_score`` (IoU >= 0.5), from the
  detections stream (the frames the detector reported on).

Clips (``--clips``): ``sample`` (samples/pistols.mp4 and its ground truth samples/pistols.json),
``small`` (the small-object clip of bench/clips.py, made from val pistols over the first half of
one-by-one, generated into the cache folder on first use), and the no-gun clips ``one-by-one-1``
(one-by-one-person-detection.mp4 frames 0-696, the tuning half, cut into the cache folder; the
model also trained on that half as hard negatives, so its false-alert rate there is optimistic),
``vtest`` (vtest.avi) and ``one-by-one-2`` (one-by-one from frame 697 on, cut likewise). ``vtest``
and ``one-by-one-2`` are TEST-ONLY: measure on them, never tune on them.

    .venv/bin/python bench/alert_quality.py
    .venv/bin/python bench/alert_quality.py --regions on --max-side 1280 --clips small,vtest
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from bench._cpu import describe_cpu
from bench.clips import BACKGROUND, BACKGROUND_FRAMES, make_clip
from bench.frames import VTEST
from detector.boxes import iou_matrix_np
from detector.runner import DetectorRunner
from shared import keys
from shared.config import AlertsConfig, CameraConfig, RedisConfig, RegionsConfig
from shared.redis import EmbeddedRedis, connect
from shared.schemas import AlertEvent, Detections, Frame
from vigil.demo import DEMO_SCORE_THRESH, SAMPLE, build_services, reset_streams, watch_until_quiet

ALERT_IOU = 0.3
BOX_IOU = 0.5
CUTS = {"one-by-one-1": BACKGROUND_FRAMES, "one-by-one-2": range(BACKGROUND_FRAMES.stop, 1394)}
"""Clips cut from one-by-one (its 1394 frames): the first half may be tuned on, the second is test-only."""
CLIP_NAMES = ("sample", "small", "one-by-one-1", "vtest", "one-by-one-2")
TEST_ONLY = ("vtest", "one-by-one-2")

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Appearance:
    first: int
    last: int


@dataclass(frozen=True)
class Truth:
    """A clip's geometry and pistols: the boxes of each frame (clip pixels), and the appearances."""

    width: int
    height: int
    fps: float
    boxes: dict[int, list[Box]]
    appearances: list[Appearance]


@dataclass
class Score:
    clip: str
    seconds: float
    appearances: int = 0
    alerted: int = 0
    seen: int = 0
    delays_s: list[float] = field(default_factory=list)
    false_alerts: int = 0
    true_pos: int = 0
    false_pos: int = 0
    false_neg: int = 0
    frames_ingested: int = 0
    frames_reported: int = 0
    detail: list[str] = field(default_factory=list)
    """Per appearance: its pistol's height, whether the model saw it and when it alerted."""


# ----------------------------------------------------------------------------- clips


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "vigil" / "bench"


def sample_truth(path: Path) -> Truth:
    """``samples/pistols.json``: each image's stretch of frames is one appearance."""
    doc = json.loads(path.read_text())
    boxes: dict[int, list[Box]] = {}
    appearances = []
    for image in doc["images"]:
        for offset, frame_boxes in enumerate(image["boxes"]):
            boxes[image["frame_start"] + offset] = [tuple(b) for b in frame_boxes]
        appearances.append(Appearance(image["frame_start"], image["frame_stop"] - 1))
    return Truth(doc["width"], doc["height"], doc["fps"], boxes, appearances)


def small_truth(path: Path) -> Truth:
    """bench/clips.py's ground truth."""
    doc = json.loads(path.read_text())
    boxes = {i: [tuple(b["box"]) for b in frame] for i, frame in enumerate(doc["frames"]) if frame}
    appearances = [Appearance(a["first_frame"], a["last_frame"]) for a in doc["appearances"]]
    return Truth(doc["width"], doc["height"], doc["fps"], boxes, appearances)


def cut(source: Path, frames: range, out: Path) -> Path:
    """Frames ``frames`` (consecutive) of ``source``, re-encoded (H.264) once into ``out``."""
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f"partial-{out.name}")
        select = f"select=between(n\\,{frames.start}\\,{frames.stop - 1}),setpts=PTS-STARTPTS"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), "-vf", select,
             "-frames:v", str(len(frames)), "-an", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p",
             str(partial)],
            check=True,
        )  # fmt: skip
        partial.replace(out)
    return out


def small_clip() -> Path:
    """The small-object clip with bench/clips.py's defaults, made once into the cache folder."""
    out = cache_dir() / "small-objects.mp4"
    if not (out.is_file() and out.with_suffix(".json").is_file()):
        print(f"making the small-object clip {out}", flush=True)
        make_clip(out)
    return out


def clip(name: str) -> tuple[Path, Truth | None]:
    """The video and its ground truth (None: no pistol in it)."""
    if name == "sample":
        return SAMPLE, sample_truth(SAMPLE.with_suffix(".json"))
    if name == "small":
        path = small_clip()
        return path, small_truth(path.with_suffix(".json"))
    if name == "vtest":
        return VTEST, None
    if name in CUTS:
        return cut(BACKGROUND, CUTS[name], cache_dir() / f"{name}.mp4"), None
    raise ValueError(f"unknown clip {name}")


# ----------------------------------------------------------------------------- playing


@dataclass
class Run:
    alerts: list[tuple[AlertEvent, float]]
    pts_ms: dict[int, int]
    detections: list[Detections]


def play(path: Path, camera: CameraConfig, runner: DetectorRunner, regions: RegionsConfig) -> Run:
    """Play one clip through the services; what they published and the alerts received."""
    with EmbeddedRedis() as server:
        client = connect(RedisConfig(url=server.url))
        reset_streams(client, [camera.id])
        services = build_services(client, (camera,), runner, metrics_port=None, regions=regions)
        summary = watch_until_quiet(services, as_json=False)
        pts = {
            f.seq: f.pts_ms
            for f in (Frame.decode(x) for _i, x in client.xrange(keys.frames_stream(camera.id)))
        }
        detections = [Detections.decode(x) for _i, x in client.xrange(keys.detections_stream(camera.id))]
    return Run(summary.alerts, pts, detections)


# ----------------------------------------------------------------------------- scoring


def scaled(box: Box, factor: float) -> Box:
    return (box[0] * factor, box[1] * factor, box[2] * factor, box[3] * factor)


def overlaps(box: Box, truths: list[Box], threshold: float) -> bool:
    return bool(truths) and float(iou_matrix_np(np.array([box]), np.array(truths)).max()) >= threshold


def matches(found: list[Box], truths: list[Box]) -> int:
    """Greedy one-to-one matches at IoU >= BOX_IOU."""
    if not found or not truths:
        return 0
    iou = iou_matrix_np(np.array(found), np.array(truths))
    count = 0
    while iou.size and iou.max() >= BOX_IOU:
        i, j = np.unravel_index(int(iou.argmax()), iou.shape)
        iou[i, :], iou[:, j] = -1, -1
        count += 1
    return count


def score(name: str, run: Run, truth: Truth | None, seconds: float, fps: float, rule_score: float) -> Score:
    """Score one run against its truth (None: every alert is false)."""
    truth = truth or Truth(0, 0, fps, {}, [])
    result = Score(name, seconds, appearances=len(truth.appearances), frames_ingested=len(run.pts_ms))

    def frame_of(seq: int) -> int:
        return round(run.pts_ms.get(seq, 0) * truth.fps / 1000)

    started = [(e, latency) for e, latency in run.alerts if e.kind == "started"]
    claimed: set[int] = set()
    first_alert: dict[int, float] = {}
    for number, appearance in enumerate(truth.appearances):
        delays = []
        for index, (event, latency) in enumerate(started):
            frame = frame_of(event.seq)
            factor = truth.width / event.frame_width
            inside = appearance.first <= frame <= appearance.last
            if inside and overlaps(scaled(event.box, factor), truth.boxes.get(frame, []), ALERT_IOU):
                claimed.add(index)
                delays.append(frame / truth.fps - appearance.first / truth.fps + latency)
        if delays:
            first_alert[number] = min(delays)
    result.alerted, result.delays_s = len(first_alert), list(first_alert.values())
    result.false_alerts = len(started) - len(claimed)
    seen: set[int] = set()
    for message in run.detections:
        frame = frame_of(message.seq)
        factor = truth.width / message.width if truth.width else 1.0
        truths = truth.boxes.get(frame, [])
        found = [
            scaled(o.box, factor) for o in message.objects if o.label == "pistol" and o.score >= rule_score
        ]
        hits = matches(found, truths)
        result.true_pos += hits
        result.false_pos += len(found) - hits
        result.false_neg += len(truths) - hits
        if hits:
            seen.update(i for i, a in enumerate(truth.appearances) if a.first <= frame <= a.last)
        result.frames_reported += 1
    result.seen = len(seen)
    result.detail = [describe_appearance(truth, number, number in seen, first_alert.get(number))
                     for number in range(len(truth.appearances))]  # fmt: skip
    return result


def describe_appearance(truth: Truth, number: int, seen: bool, delay_s: float | None) -> str:
    appearance = truth.appearances[number]
    heights = [
        b[3] - b[1] for f in range(appearance.first, appearance.last + 1) for b in truth.boxes.get(f, [])
    ]
    alert = "no alert" if delay_s is None else f"alerted after {delay_s:.2f} s"
    return f"#{number} ~{np.median(heights):.0f} px tall: {'seen' if seen else 'not seen'}, {alert}"


def percentile(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(values, percent))


def row(result: Score) -> str:
    def cell(value: float | None, fmt: str) -> str:
        return "–" if value is None else format(value, fmt)

    per_hour = result.false_alerts / (result.seconds / 3600) if result.seconds else None
    recall = (
        result.true_pos / (result.true_pos + result.false_neg) if result.true_pos + result.false_neg else None
    )
    precision = (
        result.true_pos / (result.true_pos + result.false_pos) if result.true_pos + result.false_pos else None
    )
    alerted = f"{result.alerted}/{result.appearances}" if result.appearances else "–"
    seen = f"{result.seen}/{result.appearances}" if result.appearances else "–"
    return (
        f"| {result.clip} | {result.seconds:.0f} s | {alerted} | {seen} | "
        f"{cell(percentile(result.delays_s, 50), '.2f')} | {cell(percentile(result.delays_s, 95), '.2f')} | "
        f"{result.false_alerts} ({cell(per_hour, '.0f')}/h) | {cell(recall, '.2f')} | "
        f"{cell(precision, '.2f')} | {result.false_pos} | "
        f"{result.frames_reported}/{result.frames_ingested} |"
    )


HEADER = (
    "| clip | length | alerted | seen by model | to alert p50 s | p95 s | false alerts | box recall | "
    "box precision | false boxes | frames reported/ingested |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


# ----------------------------------------------------------------------------- CLI


def clip_seconds(path: Path) -> float:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames, fps = capture.get(cv2.CAP_PROP_FRAME_COUNT), capture.get(cv2.CAP_PROP_FPS) or 10
    capture.release()
    return frames / fps


def add_play_arguments(parser: argparse.ArgumentParser) -> None:
    """How the clips play: the detector's engine and weights, regions, the camera's size and rate."""
    parser.add_argument(
        "--engine", default="auto", help="detector.engine (auto, torch, openvino, onnxruntime)"
    )
    parser.add_argument("--regions", choices=("on", "off"), default="off", help="detector.regions.enabled")
    parser.add_argument(
        "--max-side", type=int, default=CameraConfig.model_fields["max_side"].default,
        help="cameras[].max_side: ingest's resize of the longer side (default: the shipped default)",
    )  # fmt: skip
    parser.add_argument("--fps", type=float, default=5.0, help="cameras[].fps")
    parser.add_argument("--weights", type=Path, help="checkpoint (default: the shipped pistol detector)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_play_arguments(parser)
    parser.add_argument(
        "--clips", default=",".join(CLIP_NAMES), help=f"comma-separated of {', '.join(CLIP_NAMES)}"
    )
    args = parser.parse_args(argv)
    names = [n for n in args.clips.split(",") if n]
    unknown = set(names) - set(CLIP_NAMES)
    if unknown:
        parser.error(f"unknown clips: {', '.join(sorted(unknown))}")
    rule = AlertsConfig().rules[0]
    runner = DetectorRunner(args.weights, engine=args.engine, score_thresh=DEMO_SCORE_THRESH)
    regions = RegionsConfig(enabled=args.regions == "on")
    print(describe_cpu())
    print(
        f"engine {runner.engine}, input {runner.input_size}; max_side {args.max_side}, {args.fps:g} fps, "
        f"regions {args.regions}; rule {rule.name}: score >= {rule.min_score}, "
        f"{rule.persistence_k} of {rule.persistence_n}, end_after_s {rule.end_after_s}, "
        f"cooldown_s {rule.cooldown_s}"
    )
    if set(names) & set(TEST_ONLY):
        print("WARNING: vtest and one-by-one-2 (one-by-one frames 697 on) are test-only footage: measure on "
              "them, never tune the rule, tracker or model on them")  # fmt: skip
    results = []
    for name in names:
        path, truth = clip(name)
        camera = CameraConfig(id=name, url=str(path), fps=args.fps, max_side=args.max_side)
        print(f"playing {name} ({path})", flush=True)
        run = play(path, camera, runner, regions)
        results.append(score(name, run, truth, clip_seconds(path), args.fps, rule.min_score))
    print(HEADER)
    for result in results:
        print(row(result))
    for result in results:
        if result.detail:
            print(f"{result.clip}: " + "; ".join(result.detail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
