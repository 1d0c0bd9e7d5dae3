"""A labelled small-object clip: val pistols, 20–60 px tall, drifting over people footage.

Pistol crops (the labelled box of a validation image, ``pistols/images/val`` + ``labels/val``,
YOLO format) are shrunk to 20–60 px tall and pasted into the first half (frames 0–696) of
``one-by-one-person-detection.mp4``, resized to 1280×720: one pistol per *appearance*, a few
seconds long, drifting slowly across the frame, with gaps of background only between
appearances. The frames go to ffmpeg (H.264, libx264, yuv420p) at 10 fps; a JSON ground truth
beside the video gives every frame's boxes in frame pixels and every appearance's first and last
frame. Everything follows from ``--seed``: the same seed, inputs, ffmpeg and x264 give the same
bytes.

Only val images and the first half of one-by-one go in, so the clip may be used to tune the alert
rule; the second half of one-by-one and ``vtest.avi`` stay test-only (bench/alert_quality.py).

The pistol images are from the University of Granada (DaSCI) weapon-detection open data (Olmos,
Tabik & Herrera, "Automatic handgun detection alarm in videos using deep learning",
Neurocomputing 275, 2018; the SOHAS set), as re-hosted by Roboflow ("Provided by University of
Granada, License: Public Domain"): credit the University of Granada wherever the clip or results
on it are shown. The background's licence is ``shared/data/videos/LICENSE.one-by-one-person-detection.txt``.

    .venv/bin/python bench/clips.py --out /tmp/small.mp4             # writes /tmp/small.{mp4,json}
    .venv/bin/python bench/clips.py --out /tmp/s.mp4 --appearances 2 --appear-s 1 --gap-s 0.5
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.make_sample_clip import compact_json, ffmpeg_command, image_size, read_yolo_boxes

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VAL_IMAGES = DATA / "pistols" / "images" / "val"
VAL_LABELS = DATA / "pistols" / "labels" / "val"
BACKGROUND = DATA / "videos" / "one-by-one-person-detection.mp4"
BACKGROUND_FRAMES = range(0, 697)
"""The half of one-by-one allowed for training, tuning and calibration."""
SIZE = (1280, 720)
FPS = 10
HEIGHTS = (20, 60)
"""Pasted pistols are this many pixels tall, at least and at most."""
MIN_SOURCE_HEIGHT = 60
"""Source boxes at least this tall, so every paste is a shrink."""
MAX_ASPECT = 3.0
DRIFT_PX_PER_S = (8.0, 30.0)
EDGE = 16
"""Pistols stay this far inside the frame."""


@dataclass(frozen=True)
class Appearance:
    """One pistol on screen: its crop (already at paste size), first frame and per-frame corners."""

    file: str
    source_box: tuple[float, float, float, float]
    crop: np.ndarray
    first: int
    positions: list[tuple[int, int]]

    @property
    def last(self) -> int:
        return self.first + len(self.positions) - 1

    def box(self, frame: int) -> list[int]:
        x, y = self.positions[frame - self.first]
        return [x, y, x + self.crop.shape[1], y + self.crop.shape[0]]


def pistol_boxes(images: Path, labels: Path) -> list[tuple[Path, tuple[float, float, float, float]]]:
    """Every labelled box tall enough and not too elongated, in sorted file order."""
    found = []
    for path in sorted(p for p in images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}):
        label = labels / f"{path.stem}.txt"
        if not label.exists():
            continue
        size = image_size(path)
        if size is None:
            continue
        for box in read_yolo_boxes(label, *size):
            x1, y1, x2, y2 = max(box[0], 0), max(box[1], 0), min(box[2], size[0]), min(box[3], size[1])
            w, h = x2 - x1, y2 - y1
            if h >= MIN_SOURCE_HEIGHT and w >= 8 and max(w / h, h / w) <= MAX_ASPECT:
                found.append((path, (x1, y1, x2, y2)))
    return found


def plan(count: int, appear: int, gap: int, seed: int, images: Path, labels: Path) -> list[Appearance]:
    """``count`` appearances of ``appear`` frames each, ``gap`` frames apart (and before the first)."""
    rng = random.Random(seed)
    candidates = pistol_boxes(images, labels)
    if len(candidates) < count:
        raise SystemExit(f"only {len(candidates)} usable pistol boxes in {images}")
    appearances = []
    for index, (path, box) in enumerate(rng.sample(candidates, count)):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        x1, y1, x2, y2 = (round(v) for v in box)
        patch = image[y1:y2, x1:x2]
        height = rng.randint(*HEIGHTS)
        width = max(4, round(patch.shape[1] * height / patch.shape[0]))
        crop = cv2.resize(patch, (width, height), interpolation=cv2.INTER_AREA)
        appearances.append(
            Appearance(path.name, box, crop, gap + index * (appear + gap), drift(rng, crop.shape, appear))
        )
    return appearances


def drift(rng: random.Random, shape: tuple[int, ...], frames: int) -> list[tuple[int, int]]:
    """Top-left corners of a slow straight drift that stays inside the frame."""
    height, width = shape[:2]
    speed = rng.uniform(*DRIFT_PX_PER_S) / FPS
    angle = rng.uniform(0, 2 * np.pi)
    dx, dy = speed * np.cos(angle), speed * np.sin(angle)
    span_x, span_y = abs(dx) * (frames - 1), abs(dy) * (frames - 1)
    x0 = rng.uniform(EDGE + (span_x if dx < 0 else 0), SIZE[0] - EDGE - width - (span_x if dx > 0 else 0))
    y0 = rng.uniform(EDGE + (span_y if dy < 0 else 0), SIZE[1] - EDGE - height - (span_y if dy > 0 else 0))
    return [(round(x0 + dx * i), round(y0 + dy * i)) for i in range(frames)]


def render(appearances: list[Appearance], frame_count: int, out: Path) -> None:
    """Paste each frame's pistols into the background and pipe the frames into ffmpeg."""
    capture = cv2.VideoCapture(str(BACKGROUND))
    proc = subprocess.Popen(ffmpeg_command(out, SIZE, FPS, crf=23), stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for index in range(frame_count):
            ok, background = capture.read()
            if not ok:
                raise SystemExit(f"{BACKGROUND} ended at frame {index}")
            frame = cv2.resize(background, SIZE, interpolation=cv2.INTER_LINEAR)
            for appearance in appearances:
                if appearance.first <= index <= appearance.last:
                    x1, y1, x2, y2 = appearance.box(index)
                    frame[y1:y2, x1:x2] = appearance.crop
            proc.stdin.write(frame.tobytes())
    finally:
        capture.release()
        proc.stdin.close()
        code = proc.wait()
    if code != 0:
        raise SystemExit(f"ffmpeg failed with exit code {code}")


def ground_truth(appearances: list[Appearance], frame_count: int, out: Path, seed: int) -> dict:
    """The JSON document: geometry, sources, appearances, and each frame's boxes."""
    frames: list[list[dict]] = [[] for _ in range(frame_count)]
    for number, appearance in enumerate(appearances):
        for index in range(appearance.first, appearance.last + 1):
            frames[index].append({"appearance": number, "box": appearance.box(index)})
    return {
        "video": out.name,
        "width": SIZE[0],
        "height": SIZE[1],
        "fps": FPS,
        "frame_count": frame_count,
        "seed": seed,
        "box_format": "xyxy, frame pixels (edges, 0..width)",
        "class": "pistol",
        "source": {
            "pistols": "University of Granada (DaSCI) weapon-detection open data, pistols val; Roboflow "
            "re-host: 'Provided by University of Granada, License: Public Domain'; credit the University "
            "of Granada",
            "background": f"{BACKGROUND.name} frames 0-{frame_count - 1} (the first half, frames 0-696, "
            "is allowed for tuning), resized to 1280x720",
        },
        "appearances": [
            {
                "file": a.file,
                "source_box": [round(v, 1) for v in a.source_box],
                "size": [a.crop.shape[1], a.crop.shape[0]],
                "first_frame": a.first,
                "last_frame": a.last,
            }
            for a in appearances
        ],
        "frames": frames,
    }


def make_clip(
    out: Path,
    *,
    appearances: int = 10,
    appear_s: float = 4.0,
    gap_s: float = 2.0,
    seed: int = 12,
    images: Path = VAL_IMAGES,
    labels: Path = VAL_LABELS,
) -> dict:
    """Write ``out`` (.mp4) and its ground truth (same stem, .json); return the ground truth."""
    appear, gap = round(appear_s * FPS), round(gap_s * FPS)
    frame_count = gap + appearances * (appear + gap)
    if appear < 1 or frame_count > len(BACKGROUND_FRAMES):
        raise SystemExit(f"{frame_count} frames do not fit the {len(BACKGROUND_FRAMES)} background frames")
    planned = plan(appearances, appear, gap, seed, images, labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    render(planned, frame_count, out)
    truth = ground_truth(planned, frame_count, out, seed)
    out.with_suffix(".json").write_text(compact_json(truth) + "\n")
    return truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output .mp4 (the .json goes beside it)")
    parser.add_argument("--appearances", type=int, default=10)
    parser.add_argument("--appear-s", type=float, default=4.0, help="seconds each pistol is on screen")
    parser.add_argument("--gap-s", type=float, default=2.0, help="seconds without a pistol between them")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    truth = make_clip(
        args.out, appearances=args.appearances, appear_s=args.appear_s, gap_s=args.gap_s, seed=args.seed
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {truth['frame_count']} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
