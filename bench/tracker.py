"""Tracking quality and cost: Vigil's IoU tracker against supervision's ByteTrack on MOT15 sequences.

Both trackers read the same detections (``det.txt``: Faster R-CNN boxes published by the SORT
authors) and are scored against the same ground truth (``gt.txt``) with motmetrics, in the same
run. The scoring is MOTChallenge's: a hypothesis matches a ground-truth box at IoU >= 0.5; MOTA =
1 - (misses + false positives + id switches) / ground-truth boxes; IDF1 is the F1 of the best
one-to-one mapping between hypothesis ids and ground-truth ids over the whole sequence.

* ``vigil``: :class:`detector.tracking.iou_tracker.IoUTracker` with ``TUD_CONFIG`` below
  (chosen on TUD-Campus with ``--sweep``,
  and on the synthetic crowds of the tests). Every detection whose track has an id is a
  hypothesis (tentative tracks report nothing).
* ``bytetrack``: ``supervision.ByteTrack`` 0.30.9 (the last release that has it), default settings
  but ``frame_rate=25``: ``track_activation_threshold=0.25``, ``lost_track_buffer=30``,
  ``minimum_matching_threshold=0.8``, ``minimum_consecutive_frames=1``. Its output (the input
  detections that belong to activated tracks, with ``tracker_id``) is the hypothesis.

TUD-Campus (71 frames) is the development sequence; TUD-Stadtmitte (179 frames) is held out:
nothing was tuned on it. ms/frame is the wall time of the tracker's update calls only, the
median over ``--repeat`` runs of the whole sequence (about 5 people per frame); a last line times
both trackers on a synthetic stream of ``--objects`` boxes per frame. The goal is IDF1 >=
ByteTrack's on both sequences.

    .venv/bin/python bench/tracker.py                     # a few seconds
    .venv/bin/python bench/tracker.py --repeat 20 --json /tmp/tracker-bench.json
    .venv/bin/python bench/tracker.py --stride 5          # sampled to 5 fps, like ingest's default
    .venv/bin/python bench/tracker.py --sweep             # the TUD-Campus grid behind the defaults
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from detector.boxes import iou_matrix_np  # noqa: E402
from detector.tracking.iou_tracker import IoUTracker  # noqa: E402
from shared.config import TrackerConfig  # noqa: E402

TUD_CONFIG = TrackerConfig(high_score=0.7, new_track_score=0.9)
"""Tuned on TUD-Campus, whose Faster R-CNN detections score high (median 0.99)."""

MOT_DIR = REPO_ROOT.parent / "shared" / "data" / "mot"
SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
DEVELOPMENT = "TUD-Campus"
FRAME_RATE = 25
MATCH_IOU = 0.5  # MOTChallenge's hit criterion

Boxes = NDArray[np.float64]
# one frame's tracker output: (ids (K,), xyxy boxes (K, 4))
FrameTracks = tuple[NDArray[np.int64], Boxes]


@dataclass(frozen=True)
class Sequence:
    name: str
    frames: int
    frame_rate: float
    detections: dict[int, tuple[Boxes, NDArray[np.float64]]]  # frame → (xyxy, scores)
    truth: dict[int, tuple[NDArray[np.int64], Boxes]]  # frame → (ids, xyxy)


@dataclass(frozen=True)
class Score:
    sequence: str
    tracker: str
    mota: float
    idf1: float
    id_switches: int
    false_positives: int
    misses: int
    ms_per_frame: float


def load_sequence(folder: Path, stride: int = 1) -> Sequence:
    """A MOTChallenge sequence folder: ``det.txt``, ``gt.txt`` and ``seqinfo.ini`` (1-based frames).

    ``stride`` keeps every stride-th frame, renumbered 1, 2, ... as ingest's fps sampling would
    (``seq`` counts sampled frames).
    """
    length = int(_ini_value(folder / "seqinfo.ini", "seqLength"))
    frame_rate = float(_ini_value(folder / "seqinfo.ini", "frameRate")) / stride
    det = np.loadtxt(folder / "det.txt", delimiter=",", ndmin=2)
    gt = np.loadtxt(folder / "gt.txt", delimiter=",", ndmin=2)
    gt = gt[gt[:, 6] != 0]  # conf 0 marks boxes to ignore (none in these two sequences)
    detections, truth = {}, {}
    for frame, source in enumerate(range(1, length + 1, stride), start=1):
        dets, boxes = det[det[:, 0] == source], gt[gt[:, 0] == source]
        detections[frame] = (_xywh_to_xyxy(dets[:, 2:6]), dets[:, 6])
        truth[frame] = (boxes[:, 1].astype(np.int64), _xywh_to_xyxy(boxes[:, 2:6]))
    name = folder.name if stride == 1 else f"{folder.name}/{stride}"
    return Sequence(name, len(detections), frame_rate, detections, truth)


def synthetic_sequence(objects: int, frames: int = 500, seed: int = 0) -> Sequence:
    """``objects`` boxes crossing a 1920x1080 view in straight lines (timing only: no ground truth)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform([0, 0], [1800, 900], (objects, 2))
    velocity = rng.uniform(-4, 4, (objects, 2))
    detections = {}
    for frame in range(1, frames + 1):
        corner = start + velocity * frame + rng.normal(0, 1.5, (objects, 2))
        boxes = np.concatenate([corner, corner + np.array([60.0, 150.0])], axis=1)
        detections[frame] = (boxes, rng.uniform(0.3, 1.0, objects))
    truth = {f: (np.zeros(0, dtype=np.int64), np.zeros((0, 4))) for f in detections}
    return Sequence(f"synthetic-{objects}", frames, FRAME_RATE, detections, truth)


def run_vigil(seq: Sequence, config: TrackerConfig) -> tuple[list[FrameTracks], float]:
    """Vigil's tracker, frame by frame (a person is class 0), and the seconds spent in ``update``."""
    tracker = IoUTracker(config)
    labels = {f: np.zeros(len(seq.detections[f][1]), dtype=np.int64) for f in range(1, seq.frames + 1)}
    frames, spent = [], 0.0
    for frame in range(1, seq.frames + 1):
        boxes, scores = seq.detections[frame]
        start = time.perf_counter()
        out = tracker.update(boxes, scores, labels[frame], frame=frame)
        spent += time.perf_counter() - start
        kept = [t for t in out if t.track_id is not None]
        frames.append((np.array([t.track_id for t in kept], dtype=np.int64), np.array([t.box for t in kept])))
    return frames, spent


def run_bytetrack(seq: Sequence) -> tuple[list[FrameTracks], float]:
    """supervision's ByteTrack (default settings, the sequence's fps) on the same detections, and the seconds
    spent in ``update_with_detections``."""
    import supervision as sv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation notice (moved to the `trackers` package)
        tracker = sv.ByteTrack(frame_rate=seq.frame_rate)
    frames, spent = [], 0.0
    for frame in range(1, seq.frames + 1):
        boxes, scores = seq.detections[frame]
        dets = sv.Detections(
            xyxy=boxes.copy(), confidence=scores.copy(), class_id=np.zeros(len(scores), dtype=int)
        )
        start = time.perf_counter()
        out = tracker.update_with_detections(dets)
        spent += time.perf_counter() - start
        frames.append((out.tracker_id.astype(np.int64), out.xyxy))
    return frames, spent


def evaluate(seq: Sequence, tracks: list[FrameTracks]) -> dict[str, float]:
    """motmetrics' MOTA, IDF1, id switches, false positives and misses of one run."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for frame, (hyp_ids, hyp_boxes) in enumerate(tracks, start=1):
        gt_ids, gt_boxes = seq.truth[frame]
        acc.update(gt_ids, hyp_ids, iou_distance(gt_boxes, hyp_boxes))
    metrics = ["mota", "idf1", "num_switches", "num_false_positives", "num_misses"]
    row = mm.metrics.create().compute(acc, metrics=metrics, name=seq.name).iloc[0]
    return {name: float(row[name]) for name in metrics}


def iou_distance(gt_boxes: Boxes, hyp_boxes: Boxes) -> NDArray[np.float64]:
    """1 - IoU, NaN below the hit threshold (motmetrics' own iou_matrix fails on numpy 2)."""
    distance = 1.0 - iou_matrix_np(gt_boxes.reshape(-1, 4), hyp_boxes.reshape(-1, 4))
    distance[distance > 1.0 - MATCH_IOU] = np.nan
    return distance


def score(seq: Sequence, name: str, run: Callable[[], tuple[list[FrameTracks], float]], repeat: int) -> Score:
    """One tracker on one sequence: its metrics, and the median time per frame over ``repeat`` runs."""
    runs = [run() for _ in range(repeat)]
    result = evaluate(seq, runs[0][0])
    return Score(
        sequence=seq.name,
        tracker=name,
        mota=result["mota"],
        idf1=result["idf1"],
        id_switches=int(result["num_switches"]),
        false_positives=int(result["num_false_positives"]),
        misses=int(result["num_misses"]),
        ms_per_frame=statistics.median(seconds for _, seconds in runs) * 1000 / seq.frames,
    )


SWEEP_GRID: dict[str, tuple[float, ...]] = {
    "high_score": (0.5, 0.6, 0.7, 0.8),
    "match_iou": (0.2, 0.3, 0.4),
    "new_track_score": (0.6, 0.7, 0.8, 0.9),
    "min_hits": (2, 3),
    "max_age": (15, 30, 60),
}


def sweep(seq: Sequence) -> list[tuple[float, float, dict[str, float]]]:
    """(IDF1, MOTA, changes) for every config of :data:`SWEEP_GRID`, on the development sequence only."""
    if seq.name != DEVELOPMENT:
        raise SystemExit(f"refusing to tune on {seq.name}: only {DEVELOPMENT} is for development")
    results = []
    for values in itertools.product(*SWEEP_GRID.values()):
        changes = dict(zip(SWEEP_GRID, values, strict=True))
        result = evaluate(seq, run_vigil(seq, TrackerConfig(**{**TUD_CONFIG.model_dump(), **changes}))[0])
        results.append((result["idf1"], result["mota"], changes))
    results.sort(key=lambda r: (r[0], r[1]), reverse=True)
    return results


def print_sweep(results: list[tuple[float, float, dict[str, float]]]) -> None:
    """The best configs, then each knob's mean IDF1 over the rest of the grid (look for plateaus)."""
    for idf1, mota, changes in results[:10]:
        print(f"IDF1 {idf1:.3f}  MOTA {mota:.3f}  {changes}")
    print()
    for knob, values in SWEEP_GRID.items():
        means = [statistics.mean(r[0] for r in results if r[2][knob] == v) for v in values]
        print(f"{knob:<16} " + "  ".join(f"{v}: {m:.3f}" for v, m in zip(values, means, strict=True)))


def print_table(scores: list[Score]) -> None:
    header = f"{'sequence':<16} {'tracker':<10} {'MOTA':>6} {'IDF1':>6} {'IDSW':>5} {'FP':>5} {'FN':>5}"
    header += f" {'ms/frame':>9}"
    print(header)
    print("-" * len(header))
    for s in scores:
        held_out = "" if s.sequence.split("/")[0] == DEVELOPMENT else " (held out)"
        print(
            f"{s.sequence:<16} {s.tracker:<10} {s.mota:>6.3f} {s.idf1:>6.3f} {s.id_switches:>5d} "
            f"{s.false_positives:>5d} {s.misses:>5d} {s.ms_per_frame:>9.3f}{held_out}"
        )
    print()
    by_key = {(s.sequence, s.tracker): s for s in scores}
    for name in dict.fromkeys(s.sequence for s in scores):
        vigil, byte = by_key[(name, "vigil")], by_key[(name, "bytetrack")]
        ratio = vigil.idf1 / byte.idf1 if byte.idf1 else float("inf")
        verdict = "met" if vigil.idf1 >= byte.idf1 else "NOT met"
        print(f"{name:<16} IDF1 vigil / bytetrack = {ratio:.3f}  (goal >= 1.0: {verdict})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=MOT_DIR, help="folder holding the MOT sequences")
    parser.add_argument("--repeat", type=int, default=5, help="runs per tracker and sequence for the timing")
    parser.add_argument(
        "--stride", type=int, default=1, help="keep every n-th frame (5: 25 fps sampled to 5 fps)"
    )
    parser.add_argument("--objects", type=int, default=10, help="objects per frame in the synthetic timing")
    parser.add_argument("--json", type=Path, help="also write the scores here")
    parser.add_argument(
        "--sweep", action="store_true", help=f"print the best configs on {DEVELOPMENT} and stop"
    )
    args = parser.parse_args(argv)

    if args.sweep:
        print_sweep(sweep(load_sequence(args.data / DEVELOPMENT)))
        return 0

    print(f"vigil: {TUD_CONFIG}")
    print(
        f"bytetrack: supervision.ByteTrack(frame_rate={FRAME_RATE / args.stride:g}), other settings default\n"
    )
    scores = []
    for name in SEQUENCES:
        seq = load_sequence(args.data / name, args.stride)
        scores.append(score(seq, "vigil", lambda seq=seq: run_vigil(seq, TUD_CONFIG), args.repeat))
        scores.append(score(seq, "bytetrack", lambda seq=seq: run_bytetrack(seq), args.repeat))
    print_table(scores)
    synthetic = synthetic_sequence(args.objects)
    vigil_ms = statistics.median(run_vigil(synthetic, TUD_CONFIG)[1] for _ in range(args.repeat))
    byte_ms = statistics.median(run_bytetrack(synthetic)[1] for _ in range(args.repeat))
    print(
        f"\n{synthetic.name} ({args.objects} objects/frame, {synthetic.frames} frames, timing only): "
        f"vigil {vigil_ms * 1000 / synthetic.frames:.3f} ms/frame, "
        f"bytetrack {byte_ms * 1000 / synthetic.frames:.3f} ms/frame"
    )
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in scores], indent=2))
    return 0


def _xywh_to_xyxy(xywh: NDArray[np.float64]) -> Boxes:
    out = xywh.astype(np.float64).copy()
    out[:, 2:] += out[:, :2]
    return out


def _ini_value(path: Path, key: str) -> str:
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == key:
            return value.strip()
    raise KeyError(f"{key} not in {path}")


if __name__ == "__main__":
    raise SystemExit(main())
