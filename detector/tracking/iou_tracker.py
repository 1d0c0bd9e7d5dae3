"""Two-stage IoU tracking of one camera's detections, and one tracker per camera.

Each :meth:`IoUTracker.update` takes one frame's detections and

1. predicts every track's box to the frame's time with its constant-velocity model;
2. matches **high-score** detections to confirmed and lost tracks (Hungarian method on IoU);
3. matches **low-score** detections to the confirmed tracks still unmatched, with a stricter IoU:
   a weak detection can keep a track alive through partial occlusion but never starts one
   (ByteTrack's second stage);
4. matches the remaining high-score detections to tentative tracks;
5. marks unmatched tracks missed (confirmed ones become lost; lost ones are removed after
   ``max_age_s`` unseen, tentative ones after ``tentative_age_s``), confirms tentative tracks with
   ``min_hits`` hits within ``confirm_s``, and starts tentative tracks from the high-score
   detections left over that reach ``new_track_score``.

Matching is class-aware: a track only takes detections of its own label. Time is the frames' own
(seconds, any origin: ``ts_ns / 1e9``), so ages mean the same at any frame rate, and frames
dropped under load count as time that passed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linear_sum_assignment

from detector.boxes import iou_matrix_np
from detector.tracking.tracks import Track, TrackState
from shared.config import TrackerConfig
from shared.schemas import Box, Detection

_NO_MATCH_COST = 1e6
IdSource = Callable[[], int]
"""Gives the id of each track as it is confirmed."""


@dataclass(frozen=True)
class TrackedBox:
    """One input detection after tracking. ``track_id`` is ``None`` while its track is tentative,
    and for a detection no track took (too weak to start one)."""

    box: Box
    score: float
    label: int
    track_id: int | None


def match_by_iou(
    track_boxes: NDArray[np.floating],
    det_boxes: NDArray[np.floating],
    *,
    min_iou: float,
    track_labels: NDArray[np.integer] | None = None,
    det_labels: NDArray[np.integer] | None = None,
) -> list[tuple[int, int]]:
    """The (track row, detection row) pairs of the assignment with the largest total IoU, keeping
    only pairs with IoU >= ``min_iou`` and, when labels are given, the same label."""
    if len(track_boxes) == 0 or len(det_boxes) == 0:
        return []
    iou = iou_matrix_np(track_boxes, det_boxes)
    allowed = iou >= min_iou
    if track_labels is not None and det_labels is not None:
        allowed &= track_labels[:, None] == det_labels[None, :]
    if not allowed.any():
        return []
    cost = np.where(allowed, 1.0 - iou, _NO_MATCH_COST)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]


class IoUTracker:
    """Tracks one camera's objects. Ids start at 1 and count up as tracks are confirmed.

    ``update`` takes one frame's detections: ``boxes`` xyxy (N, 4) in pixels, ``scores`` (N,) and
    ``labels`` (N,) class ids, and ``time_s`` the frame's time in seconds. It returns one
    :class:`TrackedBox` per detection, in input order. A frame no newer than the last one moves
    no track and ages none.

    Tracks started on the tracker's very first frame are confirmed at once (as in SORT and
    ByteTrack): with no history to wait for, objects already in view when a camera comes up, or
    changes owner, get their ids without a ``min_hits`` delay.
    """

    def __init__(self, config: TrackerConfig | None = None, *, next_id: IdSource | None = None) -> None:
        self.config = config or TrackerConfig()
        self._new_id: IdSource = next_id or itertools.count(1).__next__
        self._tracks: list[Track] = []
        self._last_time_s: float | None = None
        self._frames_seen = 0

    @property
    def tracks(self) -> tuple[Track, ...]:
        """The live tracks (tentative, confirmed and lost)."""
        return tuple(self._tracks)

    def update(
        self, boxes: ArrayLike, scores: ArrayLike, labels: ArrayLike, *, time_s: float
    ) -> list[TrackedBox]:
        boxes_xyxy, score_arr, label_arr = _as_arrays(boxes, scores, labels)
        elapsed_s = self._advance(time_s)
        for track in self._tracks:
            track.predict(elapsed_s)

        cfg = self.config
        high = np.flatnonzero(score_arr >= cfg.high_score)
        low = np.flatnonzero((score_arr >= cfg.low_score) & (score_arr < cfg.high_score))
        established = [t for t in self._tracks if t.state is not TrackState.TENTATIVE]
        tentative = [t for t in self._tracks if t.state is TrackState.TENTATIVE]

        taken: dict[int, Track] = {}  # detection index → the track it continues or starts
        frame_dets = (boxes_xyxy, label_arr)
        spare_high = self._match(established, high, cfg.match_iou, frame_dets, taken)
        matched = {id(t) for t in taken.values()}
        seen_last_frame = [t for t in established if t.state is TrackState.CONFIRMED and id(t) not in matched]
        self._match(seen_last_frame, low, cfg.low_match_iou, frame_dets, taken)
        spare_high = self._match(tentative, spare_high, cfg.match_iou, frame_dets, taken)

        self._settle(boxes_xyxy, score_arr, taken, elapsed_s, time_s)
        self._start_tracks(boxes_xyxy, score_arr, label_arr, spare_high, taken, time_s)
        return [
            TrackedBox(
                box=_box(boxes_xyxy[i]),
                score=float(score_arr[i]),
                label=int(label_arr[i]),
                track_id=taken[i].track_id if i in taken else None,
            )
            for i in range(len(score_arr))
        ]

    def _advance(self, time_s: float) -> float:
        """Seconds since the last frame (0 on the first, and when time stands still or goes back)."""
        last = self._last_time_s
        self._last_time_s = time_s if last is None else max(last, time_s)
        self._frames_seen += 1
        return 0.0 if last is None else max(0.0, time_s - last)

    def _match(
        self,
        tracks: Sequence[Track],
        dets: NDArray[np.intp],
        min_iou: float,
        frame_dets: tuple[NDArray[np.float64], NDArray[np.int64]],
        taken: dict[int, Track],
    ) -> NDArray[np.intp]:
        """Match ``tracks`` to the detections ``dets`` (indices into the frame's ``(boxes, labels)``),
        record the pairs in ``taken`` and return the detections left over."""
        if not tracks or len(dets) == 0:
            return dets
        boxes, labels = frame_dets
        pairs = match_by_iou(
            np.array([t.box for t in tracks]),
            boxes[dets],
            min_iou=min_iou,
            track_labels=np.array([t.label for t in tracks]),
            det_labels=labels[dets],
        )
        for row, col in pairs:
            taken[int(dets[col])] = tracks[row]
        used = {col for _, col in pairs}
        return np.array([d for col, d in enumerate(dets) if col not in used], dtype=np.intp)

    def _settle(
        self,
        boxes: NDArray[np.float64],
        scores: NDArray[np.float64],
        taken: dict[int, Track],
        elapsed_s: float,
        time_s: float,
    ) -> None:
        """Apply the matches and misses: hits, confirmations, losses and removals."""
        cfg = self.config
        for det, track in taken.items():
            track.hit(_box(boxes[det]), float(scores[det]), time_s=time_s)
            tentative = track.state is TrackState.TENTATIVE
            if tentative and track.hits_within(cfg.confirm_s, now_s=time_s) >= cfg.min_hits:
                track.confirm(self._new_id())
        matched = {id(t) for t in taken.values()}
        for track in self._tracks:
            if id(track) not in matched:
                track.miss(seconds=elapsed_s, max_age_s=cfg.max_age_s, tentative_age_s=cfg.tentative_age_s)
        self._tracks = [t for t in self._tracks if t.alive]

    def _start_tracks(
        self,
        boxes: NDArray[np.float64],
        scores: NDArray[np.float64],
        labels: NDArray[np.int64],
        dets: NDArray[np.intp],
        taken: dict[int, Track],
        time_s: float,
    ) -> None:
        for det in dets:
            if scores[det] < self.config.new_track_score:
                continue
            track = Track.start(_box(boxes[det]), float(scores[det]), int(labels[det]), time_s=time_s)
            if self.config.min_hits <= 1 or self._frames_seen == 1:
                track.confirm(self._new_id())
            self._tracks.append(track)
            taken[int(det)] = track


class MultiCameraTracker:
    """One :class:`IoUTracker` per camera, created on a camera's first frame; speaks
    :class:`~shared.schemas.Detection` records, matching on ``class_id``.

    Track ids are scoped to the camera: each camera has its own id source (by default counting
    from 1), so ``(camera, track_id)`` names a track, and nothing one camera sees can continue or
    renumber another's tracks. When a camera changes owner, the old owner calls :meth:`drop` and
    the new owner :meth:`start` s it afresh, with an id source that never repeats an id the camera
    had before (state is not handed over; see docs/tracking.md).
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._trackers: dict[str, IoUTracker] = {}

    def start(self, camera: str, *, next_id: IdSource) -> None:
        """A fresh tracker for ``camera`` whose new tracks take their ids from ``next_id``."""
        self._trackers[camera] = IoUTracker(self.config, next_id=next_id)

    def tracker(self, camera: str) -> IoUTracker:
        """This camera's tracker (a new one on first use)."""
        if camera not in self._trackers:
            self._trackers[camera] = IoUTracker(self.config)
        return self._trackers[camera]

    def update(
        self, camera: str, detections: Sequence[Detection], *, time_s: float
    ) -> list[Detection]:
        """The camera's detections of one frame, in order, with ``track_id`` set (``None`` while
        a track is tentative). ``time_s`` is the frame's time (its ``ts_ns / 1e9``)."""
        boxes = np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4)
        scores = np.array([d.score for d in detections], dtype=np.float64)
        class_ids = np.array([d.class_id for d in detections], dtype=np.int64)
        tracked = self.tracker(camera).update(boxes, scores, class_ids, time_s=time_s)
        return [replace(d, track_id=t.track_id) for d, t in zip(detections, tracked, strict=True)]

    def track_ids(self, camera: str) -> set[int]:
        """The ids of the camera's live tracks that have one (confirmed or lost)."""
        tracker = self._trackers.get(camera)
        return {t.track_id for t in tracker.tracks if t.track_id is not None} if tracker else set()

    def track_boxes(self, camera: str) -> tuple[Box, ...]:
        """The boxes of the camera's live tracks (tentative, confirmed and lost) as of its last frame."""
        tracker = self._trackers.get(camera)
        return tuple(t.box for t in tracker.tracks) if tracker else ()

    def live_tracks(self) -> int:
        """Tracks with an id (confirmed or lost), over all cameras."""
        return sum(t.track_id is not None for tracker in self._trackers.values() for t in tracker.tracks)

    def drop(self, camera: str) -> None:
        """Forget the camera entirely (it went to another owner, or out of the config)."""
        self._trackers.pop(camera, None)


def _box(row: NDArray[np.float64]) -> Box:
    x1, y1, x2, y2 = row.tolist()
    return (x1, y1, x2, y2)


def _as_arrays(
    boxes: ArrayLike, scores: ArrayLike, labels: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.int64]]:
    boxes_xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    score_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    label_arr = np.asarray(labels, dtype=np.int64).reshape(-1)
    if not len(boxes_xyxy) == len(score_arr) == len(label_arr):
        raise ValueError(
            "boxes, scores and labels differ in length: "
            f"{len(boxes_xyxy)}, {len(score_arr)}, {len(label_arr)}"
        )
    return boxes_xyxy, score_arr, label_arr
