#!/usr/bin/env python3
"""Make the bundled demo clip: a slow pan and zoom over pistol images, with ground truth.

Picks ``--count`` images from a YOLO-format image folder (sorted names, evenly spaced,
short side >= 320 px), renders a Ken Burns move over each (the view zooms from 100 % to
85 % of the image while drifting so the pistols stay in view), letterboxes it to the
output size without distortion and pipes raw BGR frames into ffmpeg (H.264, yuv420p).

Next to the video it writes a JSON sidecar (same stem) with, for every image, its frame
range and the ground-truth pistol boxes of every frame in output pixels (xyxy), so an
end-to-end test can score detections on the clip.

    .venv/bin/python tools/make_sample_clip.py          # writes samples/pistols.{mp4,json}
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGES = REPO_ROOT.parent / "shared" / "data" / "pistols" / "images" / "val"
DEFAULT_OUT = REPO_ROOT / "samples" / "pistols.mp4"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
MIN_SHORT_SIDE = 320
END_ZOOM = 0.85  # the view ends at 85 % of the image's width and height
JSON_WIDTH = 100  # lists shorter than this are written on one line

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


@dataclass(frozen=True)
class Source:
    """One picked image: its path, pixel size and ground-truth boxes in image pixels."""

    path: Path
    width: int
    height: int
    boxes: list[Box]


@dataclass(frozen=True)
class View:
    """A crop window of the (working) image: centre and size in pixels."""

    cx: float
    cy: float
    w: float
    h: float


# ----------------------------------------------------------------------------- inputs


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WIDTHxHEIGHT`` (even numbers, as yuv420p needs)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from exc
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size must be even and at least 16x16, got {text!r}")
    return w, h


def labels_dir_for(images: Path) -> Path:
    """YOLO convention: ``.../images/<split>`` has its labels in ``.../labels/<split>``."""
    parts = list(images.parts)
    if "images" not in parts:
        raise SystemExit(f"cannot derive a labels folder from {images}; pass --labels")
    i = len(parts) - 1 - parts[::-1].index("images")
    parts[i] = "labels"
    return Path(*parts)


def read_yolo_boxes(label: Path, width: int, height: int) -> list[Box]:
    """Read ``class cx cy w h`` (normalised) lines as xyxy boxes in image pixels."""
    if not label.exists():
        return []
    boxes: list[Box] = []
    for line in label.read_text().splitlines():
        fields = line.split()
        if len(fields) != 5:
            continue
        cx, cy, bw, bh = (float(v) for v in fields[1:])
        boxes.append(
            (
                (cx - bw / 2) * width,
                (cy - bh / 2) * height,
                (cx + bw / 2) * width,
                (cy + bh / 2) * height,
            )
        )
    return boxes


def image_size(path: Path) -> tuple[int, int] | None:
    """Width and height of an image, or None when OpenCV cannot read it."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if image is None else (image.shape[1], image.shape[0])


def evenly_spaced(items: list[Path], count: int) -> list[Path]:
    """Pick ``count`` items spread evenly through the list (the middle of each bin)."""
    if count > len(items):
        raise SystemExit(f"asked for {count} images but only {len(items)} are usable")
    return [items[(2 * i + 1) * len(items) // (2 * count)] for i in range(count)]


def pick_sources(images: Path, labels: Path, count: int, match: str = "*") -> list[Source]:
    """Sorted images with a short side of at least 320 px, ``count`` of them evenly spaced."""
    usable: list[tuple[Path, int, int]] = []
    for path in sorted(p for p in images.glob(match) if p.suffix.lower() in IMAGE_SUFFIXES):
        size = image_size(path)
        if size is not None and min(size) >= MIN_SHORT_SIDE:
            usable.append((path, *size))
    by_path = {path: (w, h) for path, w, h in usable}
    picked = evenly_spaced([path for path, _, _ in usable], count)
    return [Source(p, *by_path[p], read_yolo_boxes(labels / f"{p.stem}.txt", *by_path[p])) for p in picked]


# ----------------------------------------------------------------------------- motion


def ease(t: float) -> float:
    """Smoothstep: starts and ends the move gently."""
    return t * t * (3 - 2 * t)


def union(boxes: list[Box]) -> Box | None:
    """The smallest box holding all boxes, or None for none."""
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def end_centre_1d(size: float, view: float, lo: float, hi: float, towards_high: bool) -> float:
    """End centre on one axis: view inside the image and, if it fits, [lo, hi] inside the view.

    Among the allowed centres it takes the extreme on the requested side, so the drift is
    as large as it can be without losing a pistol; if the pistols do not fit it centres
    on them (clamped to the image).
    """
    low, high = view / 2, size - view / 2
    keep_low, keep_high = max(low, hi - view / 2), min(high, lo + view / 2)
    if keep_low <= keep_high:
        return keep_high if towards_high else keep_low
    return min(max((lo + hi) / 2, low), high)


def end_view(width: float, height: float, boxes: list[Box], index: int) -> View:
    """Where the move ends: zoomed to 85 %, pushed towards a corner that alternates per image."""
    w, h = width * END_ZOOM, height * END_ZOOM
    box = union(boxes) or (width / 2, height / 2, width / 2, height / 2)
    right, down = index % 2 == 0, index % 4 < 2
    return View(
        end_centre_1d(width, w, box[0], box[2], right),
        end_centre_1d(height, h, box[1], box[3], down),
        w,
        h,
    )


def view_at(start: View, end: View, t: float) -> View:
    """Interpolate the crop window; both its edges move linearly, so it stays in the image."""
    e = ease(t)
    return View(*(a + (b - a) * e for a, b in zip(_fields(start), _fields(end), strict=True)))


def _fields(view: View) -> tuple[float, float, float, float]:
    return view.cx, view.cy, view.w, view.h


# ----------------------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Placement:
    """How a view lands in the output frame: x_out = scale * x_img + dx (same for y)."""

    scale: float
    dx: float
    dy: float


def place(view: View, out_w: int, out_h: int) -> Placement:
    """Fit the view into the output keeping its aspect (letterbox), centred."""
    scale = min(out_w / view.w, out_h / view.h)
    left, top = view.cx - view.w / 2, view.cy - view.h / 2
    return Placement(
        scale,
        (out_w - view.w * scale) / 2 - left * scale,
        (out_h - view.h * scale) / 2 - top * scale,
    )


def content_rect(w: float, h: float, out_w: int, out_h: int) -> Box:
    """Where a w x h picture lands when fitted and centred (the rest is black letterbox)."""
    scale = min(out_w / w, out_h / h)
    w, h = w * scale, h * scale
    return ((out_w - w) / 2, (out_h - h) / 2, (out_w + w) / 2, (out_h + h) / 2)


def render(image: np.ndarray, p: Placement, out_w: int, out_h: int) -> np.ndarray:
    """Warp the image into the output frame (edge coordinates -> OpenCV pixel centres)."""
    shift = 0.5 * p.scale - 0.5
    matrix = np.array([[p.scale, 0, p.dx + shift], [0, p.scale, p.dy + shift]], np.float64)
    return cv2.warpAffine(
        image,
        matrix,
        (out_w, out_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0),
    )


def map_boxes(boxes: list[Box], p: Placement, clip: Box) -> list[list[float]]:
    """Boxes in output pixels, clipped to the visible image, rounded to 0.1 px."""
    out: list[list[float]] = []
    for x1, y1, x2, y2 in boxes:
        a = max(x1 * p.scale + p.dx, clip[0])
        b = max(y1 * p.scale + p.dy, clip[1])
        c = min(x2 * p.scale + p.dx, clip[2])
        d = min(y2 * p.scale + p.dy, clip[3])
        if c - a >= 1 and d - b >= 1:
            out.append([round(a, 1), round(b, 1), round(c, 1), round(d, 1)])
    return out


def working_image(src: Source, out_w: int, out_h: int) -> tuple[np.ndarray, float]:
    """Load the image, shrunk (INTER_AREA) so the tightest view is shown at about 1:1.

    Returns the image and its scale relative to the original.
    """
    image = cv2.imread(str(src.path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {src.path}")
    fit = min(out_w / src.width, out_h / src.height)
    factor = min(1.0, fit / END_ZOOM)
    if factor < 1.0:
        size = (round(src.width * factor), round(src.height * factor))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, image.shape[1] / src.width


def render_source(
    src: Source, index: int, frames: int, size: tuple[int, int]
) -> Iterator[tuple[np.ndarray, list[list[float]]]]:
    """Yield (frame, ground-truth boxes) for each frame of one image's move."""
    out_w, out_h = size
    image, factor = working_image(src, out_w, out_h)
    height, width = image.shape[:2]
    boxes = [(x1 * factor, y1 * factor, x2 * factor, y2 * factor) for x1, y1, x2, y2 in src.boxes]
    start = View(width / 2, height / 2, width, height)
    end = end_view(width, height, boxes, index)
    for i in range(frames):
        view = view_at(start, end, i / max(frames - 1, 1))
        p = place(view, out_w, out_h)
        visible = content_rect(view.w, view.h, out_w, out_h)
        yield render(image, p, out_w, out_h), map_boxes(boxes, p, visible)


# ----------------------------------------------------------------------------- output


def ffmpeg_command(out: Path, size: tuple[int, int], fps: int, crf: int) -> list[str]:
    """ffmpeg reading raw BGR frames on stdin and writing a small, seekable H.264 mp4."""
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{size[0]}x{size[1]}",
        "-r", str(fps), "-i", "-",
        "-an", "-c:v", "libx264", "-preset", "slow", "-crf", str(crf),
        "-pix_fmt", "yuv420p", "-g", str(2 * fps), "-keyint_min", str(2 * fps),
        "-sc_threshold", "0", "-threads", "1",  # a fixed thread count keeps output identical
        "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
        "-movflags", "+faststart", str(out),
    ]  # fmt: skip


def compact_json(value: object, indent: int = 0) -> str:
    """JSON with short lists kept on one line (one line per frame of boxes)."""
    flat = json.dumps(value, separators=(", ", ": "))
    if not isinstance(value, dict | list) or len(flat) + indent <= JSON_WIDTH:
        return flat
    pad, inner = " " * indent, " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {compact_json(v, indent + 2)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{compact_json(v, indent + 2)}" for v in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


def sidecar(args: argparse.Namespace, sources: list[Source], entries: list[dict], frames: int) -> dict:
    """The ground-truth document written beside the video."""
    return {
        "video": args.out.name,
        "width": args.size[0],
        "height": args.size[1],
        "fps": args.fps,
        "frame_count": frames * len(sources),
        "frames_per_image": frames,
        "box_format": "xyxy, output-frame pixels (edges, 0..width), clipped, rounded to 0.1",
        "frame_range": "[frame_start, frame_stop): zero-based, stop exclusive",
        "class": "pistol",
        "source": {
            "dataset": "University of Granada (DaSCI) weapon-detection open data, pistols val",
            "licence": "Roboflow re-host: 'Provided by University of Granada, License: "
            "Public Domain'; credit the University of Granada",
        },
        "images": entries,
    }


def encode(args: argparse.Namespace, sources: list[Source], frames: int) -> list[dict]:
    """Render every image into ffmpeg's stdin; return the per-image sidecar entries."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = ffmpeg_command(args.out, args.size, args.fps, args.crf)
    proc = subprocess.Popen(command, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    entries: list[dict] = []
    try:
        for index, src in enumerate(sources):
            per_frame = []
            for frame, boxes in render_source(src, index, frames, args.size):
                proc.stdin.write(frame.tobytes())
                per_frame.append(boxes)
            entries.append(entry(src, index * frames, frames, per_frame, args.size))
    finally:
        proc.stdin.close()
        code = proc.wait()
    if code != 0:
        raise SystemExit(f"ffmpeg failed with exit code {code}")
    return entries


def entry(
    src: Source, first: int, frames: int, boxes: list[list[list[float]]], size: tuple[int, int]
) -> dict:
    """Sidecar record for one image."""
    letterbox = content_rect(src.width, src.height, *size)
    return {
        "file": src.path.name,
        "source_size": [src.width, src.height],
        "frame_start": first,
        "frame_stop": first + frames,
        "content": [round(v, 1) for v in letterbox],
        "boxes": boxes,
    }


# ----------------------------------------------------------------------------- CLI


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="image folder")
    parser.add_argument("--labels", type=Path, help="YOLO label folder (default: from --images)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .mp4")
    parser.add_argument("--count", type=int, default=12, help="number of images")
    parser.add_argument("--seconds-per-image", type=float, default=2.5)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--size", type=parse_size, default=(640, 480), help="WIDTHxHEIGHT")
    parser.add_argument("--crf", type=int, default=28, help="x264 quality (lower = bigger)")
    parser.add_argument("--match", default="pistol_*", help="only image names matching this glob")
    args = parser.parse_args(argv)
    if args.count < 1 or args.fps < 1 or args.seconds_per_image <= 0:
        parser.error("--count, --fps and --seconds-per-image must be positive")
    return args


def frames_per_image(seconds: float, fps: int) -> int:
    """Whole frames per image; refuses durations that are not a whole number of frames."""
    frames = seconds * fps
    if not math.isclose(frames, round(frames), abs_tol=1e-6) or round(frames) < 1:
        raise SystemExit(f"--seconds-per-image x --fps must be a whole number, got {frames}")
    return round(frames)


def main(argv: list[str] | None = None) -> int:
    """Pick the images, write the clip and its ground-truth sidecar."""
    args = parse_args(argv)
    frames = frames_per_image(args.seconds_per_image, args.fps)
    labels = args.labels or labels_dir_for(args.images)
    sources = pick_sources(args.images, labels, args.count, args.match)
    entries = encode(args, sources, frames)
    doc = sidecar(args, sources, entries, frames)
    args.out.with_suffix(".json").write_text(compact_json(doc) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {doc['frame_count']} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
