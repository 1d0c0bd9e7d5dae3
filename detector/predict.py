"""``vigil predict``: images, folders or videos in; annotated images or video out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from detector.training.datasets import IMAGE_SUFFIXES
from shared.imaging import draw_boxes

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm"}


def draw(image: np.ndarray, result: dict[str, Tensor], class_names: Sequence[str]) -> np.ndarray:
    """Boxes, labels and scores drawn on a BGR image (a copy)."""
    captions = [f"{class_names[label]} {score:.2f}" for label, score in
                zip(result["labels"].tolist(), result["scores"].tolist(), strict=True)]  # fmt: skip
    return draw_boxes(image, result["boxes"].tolist(), captions)


def to_tensor(image_bgr: np.ndarray, device: torch.device) -> Tensor:
    rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb).permute(2, 0, 1).contiguous().to(device)


def _images(source: Path) -> Iterator[Path]:
    if source.is_dir():
        yield from sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        yield source


def predict_images(model: nn.Module, source: Path, out_dir: Path, class_names: Sequence[str]) -> int:
    """Annotate every image in ``source`` (a file or folder) into ``out_dir``; returns the count."""
    device = next(model.parameters()).device
    count = 0
    for path in _images(source):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"{path}: not a readable image")
        [result] = model.predict([to_tensor(image, device)])
        cv2.imwrite(str(out_dir / f"{path.stem}.jpg"), draw(image, result, class_names))
        count += 1
    return count


def predict_video(
    model: nn.Module, source: Path, out_dir: Path, class_names: Sequence[str], batch: int = 4
) -> int:
    """Annotate every frame of a video into ``out_dir/<name>.mp4``; returns the frame count."""
    device = next(model.parameters()).device
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise ValueError(f"{source}: not a readable video")
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
                results = model.predict([to_tensor(f, device) for f in frames])
                for frame_bgr, result in zip(frames, results, strict=True):
                    if writer is None:
                        height, width = frame_bgr.shape[:2]
                        writer = cv2.VideoWriter(
                            str(out_dir / f"{source.stem}.mp4"),
                            cv2.VideoWriter_fourcc(*"mp4v"),
                            fps,
                            (width, height),
                        )
                    writer.write(draw(frame_bgr, result, class_names))
                    count += 1
                frames = []
            if not ok:
                return count
    finally:
        capture.release()
        if writer is not None:
            writer.release()


def predict(model: nn.Module, source: str | Path, out_dir: str | Path, class_names: Sequence[str]) -> int:
    source, out_dir = Path(source), Path(out_dir)
    if not source.exists():
        raise FileNotFoundError(source)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        return predict_video(model, source, out_dir, class_names)
    return predict_images(model, source, out_dir, class_names)
