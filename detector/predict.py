"""``vigil predict``: images, folders or videos in; annotated images or video out, and with
``results`` the detections beside them, machine-readable:

* ``json``: ``NAME.json`` per image (``NAME/FRAME.json`` per video frame, FRAME zero-padded to 6):
  ``{"source", "frame", "width", "height", "detections": [{"label", "class_id", "score",
  "box": [x1, y1, x2, y2]}]}`` with the box in the image's own pixels;
* ``labels``: ``NAME.txt`` (``NAME/FRAME.txt``) in YOLO format, one line a detection:
  ``class_id cx cy w h score``, the centre and size as fractions of the image's width and height.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from detector.training.datasets import IMAGE_SUFFIXES
from shared.imaging import draw_boxes
from shared.schemas import Detection

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm"}
ResultFormat = Literal["json", "labels"]


@dataclass(frozen=True)
class Prediction:
    """The detections of one image, or one frame of a video, in its pixels."""

    source: str
    frame: int | None
    width: int
    height: int
    detections: tuple[Detection, ...]

    @classmethod
    def of(cls, result: dict[str, Tensor], class_names: Sequence[str], *, source: str, frame: int | None,
           image: np.ndarray) -> Prediction:  # fmt: skip
        """The model's output for ``image`` (boxes already in its pixels) as typed detections."""
        height, width = image.shape[:2]
        detections = tuple(
            Detection(label=class_names[label], class_id=label, score=score, box=tuple(box))  # type: ignore[arg-type]
            for label, score, box in zip(result["labels"].tolist(), result["scores"].tolist(),
                                         result["boxes"].tolist(), strict=True)
        )  # fmt: skip
        return cls(source, frame, width, height, detections)

    def to_json(self) -> str:
        return json.dumps({
            "source": self.source, "frame": self.frame, "width": self.width, "height": self.height,
            "detections": [{"label": d.label, "class_id": d.class_id, "score": round(d.score, 4),
                            "box": [round(v, 2) for v in d.box]} for d in self.detections],
        }, indent=2) + "\n"  # fmt: skip

    def to_yolo(self) -> str:
        lines = []
        for d in self.detections:
            x1, y1, x2, y2 = d.box
            cx, cy = (x1 + x2) / 2 / self.width, (y1 + y2) / 2 / self.height
            w, h = (x2 - x1) / self.width, (y2 - y1) / self.height
            lines.append(f"{d.class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f} {d.score:.4f}\n")
        return "".join(lines)

    def write(self, base: Path, results: Collection[ResultFormat]) -> None:
        """``base.json`` and/or ``base.txt`` (``base`` may have dots: ``a.rf.1f3``)."""
        if "json" in results:
            base.with_name(f"{base.name}.json").write_text(self.to_json(), encoding="utf-8")
        if "labels" in results:
            base.with_name(f"{base.name}.txt").write_text(self.to_yolo(), encoding="utf-8")


def draw(image: np.ndarray, prediction: Prediction) -> np.ndarray:
    """Boxes, labels and scores drawn on a BGR image (a copy)."""
    captions = [f"{d.label} {d.score:.2f}" for d in prediction.detections]
    return draw_boxes(image, [d.box for d in prediction.detections], captions)


def to_tensor(image_bgr: np.ndarray, device: torch.device) -> Tensor:
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous().to(device)


def _images(source: Path) -> Iterator[Path]:
    if source.is_dir():
        yield from sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        yield source


def predict_images(
    model: nn.Module, source: Path, out_dir: Path, class_names: Sequence[str],
    results: Collection[ResultFormat] = (),
) -> int:  # fmt: skip
    """Annotate every image in ``source`` (a file or folder) into ``out_dir``; returns the count."""
    device = next(model.parameters()).device
    count = 0
    for path in _images(source):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: not a readable image")
        [result] = model.predict([to_tensor(image, device)])
        prediction = Prediction.of(result, class_names, source=path.name, frame=None, image=image)
        cv2.imwrite(str(out_dir / f"{path.stem}.jpg"), draw(image, prediction))
        prediction.write(out_dir / path.stem, results)
        count += 1
    return count


def predict_video(
    model: nn.Module, source: Path, out_dir: Path, class_names: Sequence[str],
    results: Collection[ResultFormat] = (), batch: int = 4,
) -> int:  # fmt: skip
    """Annotate every frame of a video into ``out_dir/<name>.mp4`` (results in ``out_dir/<name>/``);
    returns the frame count."""
    device = next(model.parameters()).device
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise ValueError(f"{source}: not a readable video")
    frames_dir = out_dir / source.stem
    if results:
        frames_dir.mkdir(exist_ok=True)
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0
    writer: cv2.VideoWriter | None = None
    frames: list[np.ndarray] = []
    count = 0
    try:
        while True:
            ok, frame = capture.read()
            if ok:
                frames.append(frame)
            if frames and (not ok or len(frames) == batch):
                outputs = model.predict([to_tensor(f, device) for f in frames])
                for frame_bgr, result in zip(frames, outputs, strict=True):
                    prediction = Prediction.of(result, class_names, source=source.name, frame=count,
                                               image=frame_bgr)  # fmt: skip
                    prediction.write(frames_dir / f"{count:06d}", results)
                    if writer is None:
                        height, width = frame_bgr.shape[:2]
                        writer = cv2.VideoWriter(
                            str(out_dir / f"{source.stem}.mp4"),
                            cv2.VideoWriter_fourcc(*"mp4v"),
                            fps,
                            (width, height),
                        )
                    writer.write(draw(frame_bgr, prediction))
                    count += 1
                frames = []
            if not ok:
                return count
    finally:
        capture.release()
        if writer is not None:
            writer.release()


def predict(
    model: nn.Module, source: str | Path, out_dir: str | Path, class_names: Sequence[str],
    *, results: Collection[ResultFormat] = (),
) -> int:  # fmt: skip
    """Annotate ``source`` (an image, a folder of images or a video) into ``out_dir``, with the
    ``results`` formats beside (see the module docstring); returns the images or frames done."""
    source, out_dir = Path(source), Path(out_dir)
    if not source.exists():
        raise FileNotFoundError(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        return predict_video(model, source, out_dir, class_names, results)
    return predict_images(model, source, out_dir, class_names, results)
