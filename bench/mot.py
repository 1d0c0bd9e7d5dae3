"""MOTChallenge sequences for the tracker benchmark: loading, sampling to a lower frame rate, and
deterministic noise variants of their detections.

A variant is made on the full-rate sequence and sampled afterwards, so the 5 fps run of a variant
sees the same dropped, jittered, invented and hidden detections as the 25 fps run. Noise is drawn
from a generator seeded with the seed, the variant's name and the sequence's name: the same
arguments give the same detections on every machine.

* ``drop``: each detection is removed with probability ``drop`` (a detector that misses).
* ``jitter``: each box's centre moves by a normal draw with standard deviation ``jitter`` × its
  width (x) or height (y), and each side scales by ``1 + N(0, jitter)``.
* ``false_positives``: ``false_positives`` × the number of detections extra boxes, in random
  frames at random places, each with the size and score of a random real detection.
* ``occlusions``: every person of the ground truth is hidden once per ``OCCLUSION_EVERY_S`` of their
  time in view (at least once), for 0.3–0.8 s: their detections (IoU >= 0.5 with their true box)
  are removed while hidden, as behind a pillar or a passer-by.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from detector.boxes import iou_matrix_np

Boxes = NDArray[np.float64]
OCCLUSION_EVERY_S = 3.0
OCCLUSION_S = (0.3, 0.8)
HIDDEN_IOU = 0.5


@dataclass(frozen=True)
class Sequence:
    """Frames numbered 1..frames; frame ``f`` was taken at ``(f - 1) / frame_rate`` seconds."""

    name: str
    frames: int
    frame_rate: float
    size: tuple[int, int]  # width, height in pixels
    detections: dict[int, tuple[Boxes, NDArray[np.float64]]]  # frame → (xyxy, scores)
    truth: dict[int, tuple[NDArray[np.int64], Boxes]]  # frame → (ids, xyxy)

    def time_s(self, frame: int) -> float:
        return (frame - 1) / self.frame_rate


@dataclass(frozen=True)
class Noise:
    """One noise variant (all zero: the sequence as published)."""

    name: str
    drop: float = 0.0
    jitter: float = 0.0
    false_positives: float = 0.0
    occlusions: bool = False


VARIANTS = (
    Noise("clean"),
    Noise("drop30", drop=0.3),
    Noise("jitter5", jitter=0.05),
    Noise("fp10", false_positives=0.1),
    Noise("occlusion", occlusions=True),
    Noise("all", drop=0.3, jitter=0.05, false_positives=0.1, occlusions=True),
)


def load_sequence(folder: Path) -> Sequence:
    """A MOTChallenge sequence folder: ``det.txt``, ``gt.txt`` and ``seqinfo.ini`` (1-based frames)."""
    info = _ini(folder / "seqinfo.ini")
    length = int(info["seqLength"])
    det = np.loadtxt(folder / "det.txt", delimiter=",", ndmin=2)
    gt = np.loadtxt(folder / "gt.txt", delimiter=",", ndmin=2)
    gt = gt[gt[:, 6] != 0]  # conf 0 marks boxes to ignore (none in the TUD sequences)
    detections, truth = {}, {}
    for frame in range(1, length + 1):
        dets, boxes = det[det[:, 0] == frame], gt[gt[:, 0] == frame]
        detections[frame] = (_xywh_to_xyxy(dets[:, 2:6]), dets[:, 6].copy())
        truth[frame] = (boxes[:, 1].astype(np.int64), _xywh_to_xyxy(boxes[:, 2:6]))
    size = (int(info["imWidth"]), int(info["imHeight"]))
    return Sequence(folder.name, length, float(info["frameRate"]), size, detections, truth)


def sampled(seq: Sequence, stride: int) -> Sequence:
    """Every ``stride``-th frame, renumbered 1, 2, ... as ingest's fps sampling would."""
    if stride == 1:
        return seq
    kept = range(1, seq.frames + 1, stride)
    return replace(
        seq,
        frames=len(kept),
        frame_rate=seq.frame_rate / stride,
        detections={new: seq.detections[old] for new, old in enumerate(kept, start=1)},
        truth={new: seq.truth[old] for new, old in enumerate(kept, start=1)},
    )


def with_noise(seq: Sequence, noise: Noise, seed: int = 0) -> Sequence:
    """``seq`` with ``noise`` applied to its detections (the ground truth is unchanged)."""
    if noise == Noise(noise.name):
        return seq
    rng = np.random.default_rng([seed, zlib.crc32(noise.name.encode()), zlib.crc32(seq.name.encode())])
    hidden = _occlusions(seq, rng) if noise.occlusions else {}
    all_boxes = np.concatenate([b for b, _ in seq.detections.values()])
    all_scores = np.concatenate([s for _, s in seq.detections.values()])
    extra = rng.integers(1, seq.frames + 1, round(noise.false_positives * len(all_scores)))
    detections = {}
    for frame in range(1, seq.frames + 1):
        boxes, scores = seq.detections[frame]
        keep = rng.random(len(scores)) >= noise.drop
        if frame in hidden:
            keep &= ~(iou_matrix_np(boxes, hidden[frame]) >= HIDDEN_IOU).any(axis=1)
        boxes, scores = _jittered(boxes[keep], noise.jitter, rng), scores[keep]
        fakes = rng.integers(0, len(all_scores), int((extra == frame).sum()))
        fake_boxes = _placed(all_boxes[fakes], seq.size, rng)
        detections[frame] = (np.concatenate([boxes, fake_boxes]), np.concatenate([scores, all_scores[fakes]]))
    return replace(seq, name=f"{seq.name}~{noise.name}", detections=detections)


def _occlusions(seq: Sequence, rng: np.random.Generator) -> dict[int, Boxes]:
    """frame → the true boxes of the people hidden in it."""
    frames_of: dict[int, list[int]] = {}
    for frame in range(1, seq.frames + 1):
        for person in seq.truth[frame][0].tolist():
            frames_of.setdefault(person, []).append(frame)
    hidden: dict[int, list[NDArray[np.float64]]] = {}
    for person in sorted(frames_of):
        first, last = frames_of[person][0], frames_of[person][-1]
        in_view_s = (last - first + 1) / seq.frame_rate
        for _ in range(max(1, math.floor(in_view_s / OCCLUSION_EVERY_S))):
            length = round(rng.uniform(*OCCLUSION_S) * seq.frame_rate)
            start = int(rng.integers(first, max(first, last - length) + 1))
            for frame in range(start, min(last, start + length - 1) + 1):
                ids, boxes = seq.truth[frame]
                hidden.setdefault(frame, []).extend(boxes[ids == person])
    return {frame: np.array(boxes).reshape(-1, 4) for frame, boxes in hidden.items()}


def _jittered(boxes: Boxes, jitter: float, rng: np.random.Generator) -> Boxes:
    if jitter == 0 or len(boxes) == 0:
        return boxes
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 + rng.normal(0, jitter, len(w)) * w
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 + rng.normal(0, jitter, len(h)) * h
    w, h = w * (1 + rng.normal(0, jitter, len(w))), h * (1 + rng.normal(0, jitter, len(h)))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _placed(boxes: Boxes, size: tuple[int, int], rng: np.random.Generator) -> Boxes:
    """Boxes of the sizes of ``boxes``, at random places inside a frame of ``size``."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    x = rng.uniform(0, np.maximum(size[0] - w, 1))
    y = rng.uniform(0, np.maximum(size[1] - h, 1))
    return np.stack([x, y, x + w, y + h], axis=1).reshape(-1, 4)


def _xywh_to_xyxy(xywh: NDArray[np.float64]) -> Boxes:
    out = xywh.astype(np.float64).copy()
    out[:, 2:] += out[:, :2]
    return out


def _ini(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {name.strip(): value.strip() for name, sep, value in pairs if sep}
