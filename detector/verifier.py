"""Second-stage verification of tracked detections by the localization model (docs/verifier.md).

The detector model sees a frame letterboxed down to its input (384 px); the verifier looks again
at each candidate alone: its box, grown by a context ``margin`` on every side and clipped, is cut
from the frame at the frame's own size, warped to the localizer's input (128 px) and scored.
All the crops of a batch of frames go through the localizer in one ``score_regions`` call.

A track is verified when one of its detections scores at least ``min_score`` and it was not
verified in the last ``every_s`` seconds of frame time; its latest score is carried on every later
detection of the track as ``verify_score`` (``None`` until it has one). Alert rules with
``verify: true`` count only verified sightings (``alerts/rules.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from detector.models.checkpoint import Checkpoint, CheckpointError
from detector.models.localizer import Localizer, warp_regions
from detector.runner import DecodedFrame, native_image
from shared.config import VerifierConfig
from shared.errors import DecodeError
from shared.schemas import Box, Detection

log = logging.getLogger(__name__)
DEFAULT_VERIFIER_WEIGHTS = Path(__file__).resolve().parent / "weights" / "localizer-lite0.pt"


def context_regions(boxes: Tensor, *, width: int, height: int, margin: float) -> Tensor:
    """Each ``xyxy`` box (K, 4) grown by ``margin`` of its width and height on every side, clipped
    to the ``width``×``height`` frame."""
    grow = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0) * margin
    grown = torch.cat([boxes[:, :2] - grow, boxes[:, 2:] + grow], dim=1)
    limits = grown.new_tensor([width, height, width, height])
    return torch.minimum(grown.clamp(min=0), limits)


@dataclass(frozen=True)
class Candidates:
    """The boxes of one frame to verify: ``image`` is the frame at its own size, CHW uint8 RGB,
    ``boxes`` xyxy in its pixels, ``labels`` the class name of each."""

    image: Tensor
    boxes: Sequence[Box]
    labels: Sequence[str]


class Verifier:
    """A localization model that scores boxes of frames: is each crop what the detector says it is?"""

    def __init__(self, model: Localizer, *, margin: float) -> None:
        self.model = model.eval()
        self.margin = margin
        self.device = next(model.parameters()).device
        self._class_index = {name: index for index, name in enumerate(model.class_names)}

    @classmethod
    def load(cls, weights: str | Path | None, *, device: torch.device, margin: float) -> Verifier:
        """A localizer checkpoint (default: the shipped one) on ``device``, channels-last."""
        path = Path(weights) if weights else DEFAULT_VERIFIER_WEIGHTS
        model = Checkpoint.load(path).build()
        if not isinstance(model, Localizer):
            raise CheckpointError(f"{path}: not a localizer checkpoint, so it cannot verify")
        model = model.to(device).to(memory_format=torch.channels_last)
        return cls(model, margin=margin)

    def image(self, rgb: np.ndarray) -> Tensor:
        """An HWC RGB ``uint8`` array as :meth:`score` takes it: CHW on the verifier's device."""
        return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).to(self.device)

    def check_labels(self, labels: Collection[str]) -> None:
        """Refuse detector classes the localizer does not know (they could never be verified)."""
        unknown = sorted(set(labels) - set(self._class_index))
        if unknown:
            raise CheckpointError(f"the verifier does not know the detector's classes {unknown}")

    @torch.inference_mode()
    def score(self, frames: Sequence[Candidates]) -> list[list[float]]:
        """Per frame, each box's probability of its label (one forward pass for every crop)."""
        crops, labels, counts = [], [], []
        for frame in frames:
            counts.append(len(frame.boxes))
            if not frame.boxes:
                continue
            height, width = frame.image.shape[-2:]
            boxes = torch.tensor(frame.boxes, dtype=torch.float32, device=frame.image.device)
            regions = context_regions(boxes, width=width, height=height, margin=self.margin)
            crops.append(warp_regions(self.model.normalise(frame.image), regions, self.model.input_size))
            labels += [self._class_index[label] for label in frame.labels]
        if not crops:
            return [[] for _ in frames]
        logits, _boxes = self.model.score_regions(
            torch.cat(crops).contiguous(memory_format=torch.channels_last)
        )
        rows = torch.arange(len(labels), device=logits.device)
        picked = logits.sigmoid()[rows, torch.tensor(labels, device=logits.device)].float().cpu()
        return [part.tolist() for part in picked.split(counts)]


@dataclass(frozen=True)
class _Verified:
    ts_ns: int
    score: float


@dataclass(frozen=True)
class Verification:
    """The outcome of :meth:`TrackVerifier.verify` for a batch."""

    detections: list[list[Detection]]
    """Per frame, its detections with ``verify_score`` set where the track has one."""
    verified: list[int]
    """Per frame, how many of its detections were scored now."""
    seconds: float


class TrackVerifier:
    """Decides which tracks are due, verifies them with a :class:`Verifier`, and carries each
    track's latest score on its detections. Tracks are ``(camera, track_id)``; time is frame time."""

    def __init__(self, verifier: Verifier, *, min_score: float, every_s: float) -> None:
        self.verifier = verifier
        self.min_score = min_score
        self.every_ns = round(every_s * 1e9)
        self._tracks: dict[str, dict[int, _Verified]] = {}

    @classmethod
    def from_config(
        cls, config: VerifierConfig, *, device: str, labels: Collection[str]
    ) -> TrackVerifier:
        verifier = Verifier.load(config.weights, device=torch.device(device), margin=config.margin)
        verifier.check_labels(labels)
        return cls(verifier, min_score=config.min_score, every_s=config.every_s)

    def verify(self, batch: Sequence[tuple[DecodedFrame, list[Detection]]]) -> Verification:
        """Verify the due tracks of a batch of tracked frames (in frame order per camera)."""
        started = time.perf_counter()
        frames: list[Candidates] = []
        owners: list[tuple[int, DecodedFrame, list[tuple[int, Detection]]]] = []
        for position, (item, detections) in enumerate(batch):
            due = self._due(item, detections)
            if not due:
                continue
            try:
                image = native_image(item, self.verifier.image)
                if isinstance(image, np.ndarray):  # the runner's numpy image (a compiled engine)
                    image = self.verifier.image(image.transpose(1, 2, 0))
            except DecodeError as error:  # it decoded once for the model, so hardly ever
                log.debug("camera %s seq %d: not verified (%s)", item.frame.camera, item.frame.seq, error)
                continue
            frames.append(Candidates(image, [d.box for _, d in due], [d.label for _, d in due]))
            owners.append((position, item, due))
        verified = [0] * len(batch)
        for (position, item, due), scores in zip(owners, self.verifier.score(frames), strict=True):
            states = self._tracks.setdefault(item.frame.camera, {})
            for (track_id, _detection), score in zip(due, scores, strict=True):
                states[track_id] = _Verified(item.frame.ts_ns, round(score, 4))
            verified[position] = len(due)
        annotated = [self._annotate(item.frame.camera, detections) for item, detections in batch]
        return Verification(annotated, verified, time.perf_counter() - started)

    def retain(self, camera: str, track_ids: Collection[int]) -> None:
        """Forget the camera's tracks that are not among ``track_ids`` (the live ones)."""
        states = self._tracks.get(camera)
        if states:
            self._tracks[camera] = {tid: state for tid, state in states.items() if tid in track_ids}

    def forget(self, camera: str) -> None:
        self._tracks.pop(camera, None)

    def _due(self, item: DecodedFrame, detections: Sequence[Detection]) -> list[tuple[int, Detection]]:
        """The (track id, detection) pairs to verify: tracked, scoring ``min_score`` or more, and
        not verified in the last ``every_s`` (a clock gone backwards makes them due too)."""
        states = self._tracks.get(item.frame.camera, {})
        due = []
        for detection in detections:
            track_id = detection.track_id
            if track_id is None or detection.score < self.min_score:
                continue
            last = states.get(track_id)
            if last is None or not 0 <= item.frame.ts_ns - last.ts_ns < self.every_ns:
                due.append((track_id, detection))
        return due

    def _annotate(self, camera: str, detections: list[Detection]) -> list[Detection]:
        states = self._tracks.get(camera, {})
        return [
            replace(d, verify_score=states[d.track_id].score) if d.track_id in states else d
            for d in detections
        ]
