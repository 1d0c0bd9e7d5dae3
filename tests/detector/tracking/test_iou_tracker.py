"""The IoU tracker: life cycle, the low-score stage, per-camera ids, synthetic crossings and
occlusions (id switches counted), and real detections on TUD-Campus scored by motmetrics. Ages in
seconds, at several frame rates, are in test_frame_rates.py."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import motmetrics as mm
import numpy as np
import pytest
from numpy.typing import NDArray

from detector.boxes import iou_matrix_np
from detector.tracking.iou_tracker import IoUTracker, MultiCameraTracker, TrackedBox, match_by_iou
from detector.tracking.tracks import Track, TrackState
from shared.config import TrackerConfig
from shared.schemas import Detection
from tests.support.data import data_dir

CONFIG = TrackerConfig(high_score=0.7, new_track_score=0.9, tentative_age_s=0.0)
"""Score thresholds above the scores of the tests' weak detections, and tentative tracks that die
on their first miss, which the life-cycle tests below spell out."""
FPS = 25.0


def tuned(**changes: object) -> TrackerConfig:
    return TrackerConfig(**{**CONFIG.model_dump(), **changes})


PERSON, CAR = 0, 1


Box = tuple[float, float, float, float]


def box_at(x: float, y: float = 100.0, w: float = 40.0, h: float = 100.0) -> Box:
    return (x, y, x + w, y + h)


class Camera:
    """An :class:`IoUTracker` fed frames at ``fps``: each :func:`step` is the next frame, unless
    it names its ``frame`` (frames skipped under load)."""

    def __init__(self, config: TrackerConfig = CONFIG, fps: float = FPS) -> None:
        self.tracker = IoUTracker(config)
        self.fps = fps
        self.frame = -1

    @property
    def config(self) -> TrackerConfig:
        return self.tracker.config

    @property
    def tracks(self) -> tuple[Track, ...]:
        return self.tracker.tracks


def step(camera: Camera, boxes: list[Box], scores: list[float] | None = None,
         labels: list[int] | None = None, *, frame: int | None = None) -> list[TrackedBox]:  # fmt: skip
    scores = [0.95] * len(boxes) if scores is None else scores
    labels = [PERSON] * len(boxes) if labels is None else labels
    camera.frame = camera.frame + 1 if frame is None else frame
    return camera.tracker.update(np.array(boxes).reshape(-1, 4), np.array(scores), np.array(labels),
                                 time_s=camera.frame / camera.fps)  # fmt: skip


def started(config: TrackerConfig = CONFIG, fps: float = FPS) -> Camera:
    """A tracker past its first frame (objects in the very first frame are confirmed at once)."""
    camera = Camera(config, fps)
    step(camera, [])
    return camera


def confirmed_track(tracker: Camera, x: float = 100.0) -> int:
    for _ in range(tracker.config.min_hits):
        out = step(tracker, [box_at(x)])
    assert out[0].track_id is not None
    return out[0].track_id


# --- matching ----------------------------------------------------------------------------------


def test_hungarian_beats_greedy() -> None:
    # greedy takes the best pair first, track 0 with det 0 (IoU 0.82), and leaves track 1 without a
    # match (IoU 0.14 with det 1); the assignment pairs 0-1 (0.6) and 1-0 (0.43) and keeps both
    tracks = np.array([box_at(0, w=100), box_at(50, w=100)])
    dets = np.array([box_at(10, w=100), box_at(-25, w=100)])
    iou = iou_matrix_np(tracks, dets)
    assert iou.argmax() == 0 and iou[1, 1] < 0.3 < min(iou[0, 1], iou[1, 0])
    assert sorted(match_by_iou(tracks, dets, min_iou=0.3)) == [(0, 1), (1, 0)]


def test_matching_is_class_aware() -> None:
    boxes = np.array([box_at(0)])
    assert match_by_iou(boxes, boxes, min_iou=0.3, track_labels=np.array([0]), det_labels=np.array([1])) == []
    tracker = started(tuned(min_hits=1))
    person = step(tracker, [box_at(100)], labels=[PERSON])[0].track_id
    car = step(tracker, [box_at(100)], labels=[CAR])[0].track_id
    assert car is not None and car != person


# --- life cycle ---------------------------------------------------------------------------------


def test_tentative_until_min_hits_then_confirmed() -> None:
    tracker = started()
    for hit in range(1, CONFIG.min_hits):
        assert step(tracker, [box_at(100 + hit)])[0].track_id is None
        assert tracker.tracks[0].state is TrackState.TENTATIVE
    assert step(tracker, [box_at(100 + CONFIG.min_hits)])[0].track_id == 1
    assert tracker.tracks[0].state is TrackState.CONFIRMED


def test_objects_in_the_first_frame_are_confirmed_at_once() -> None:
    tracker = Camera(TrackerConfig())
    assert [t.track_id for t in step(tracker, [box_at(0), box_at(300)])] == [1, 2]


def test_a_tentative_track_dies_on_its_first_miss_and_uses_no_id() -> None:
    tracker = started()
    step(tracker, [box_at(100)])
    step(tracker, [])
    assert tracker.tracks == ()
    assert confirmed_track(tracker, x=400) == 1


def test_lost_then_removed_after_max_age() -> None:
    config = tuned(max_age_s=5.5 / FPS)
    tracker = started(config)
    track_id = confirmed_track(tracker)
    for _ in range(5):
        step(tracker, [])
        assert tracker.tracks[0].state is TrackState.LOST and tracker.tracks[0].track_id == track_id
    step(tracker, [])
    assert tracker.tracks == ()
    assert step(tracker, [box_at(100)])[0].track_id is None  # a new, tentative track


def test_a_lost_track_found_again_keeps_its_id() -> None:
    tracker = started()
    track_id = confirmed_track(tracker)
    for _ in range(10):
        step(tracker, [])
    assert step(tracker, [box_at(100)])[0].track_id == track_id
    assert tracker.tracks[0].state is TrackState.CONFIRMED


def test_weak_detections_never_start_tracks() -> None:
    tracker = started()
    for _ in range(10):
        assert step(tracker, [box_at(100)], [0.5])[0].track_id is None
    assert tracker.tracks == ()
    between = (CONFIG.high_score + CONFIG.new_track_score) / 2  # high enough to match, not to start
    for _ in range(3):
        step(tracker, [box_at(100)], [between])
    assert tracker.tracks == ()


def test_low_score_stage_keeps_a_track_alive() -> None:
    config = tuned(max_age_s=5.5 / FPS)
    tracker = started(config)
    track_id = confirmed_track(tracker)
    low = (config.low_score + config.high_score) / 2
    for frame in range(15):  # far longer than max_age_s: only the low stage keeps it
        out = step(tracker, [box_at(100 + frame)], [low])
        assert out[0].track_id == track_id
        assert tracker.tracks[0].state is TrackState.CONFIRMED


def test_low_score_detections_need_the_stricter_iou() -> None:
    tracker = started()
    confirmed_track(tracker)
    shifted = box_at(100 + 40 * 0.5)  # IoU 1/3 with the track: enough for stage 1, not for stage 2
    low = (CONFIG.low_score + CONFIG.high_score) / 2
    assert CONFIG.match_iou < 1 / 3 < CONFIG.low_match_iou
    assert step(tracker, [shifted], [low])[0].track_id is None
    assert tracker.tracks[0].state is TrackState.LOST
    assert step(tracker, [shifted], [CONFIG.high_score])[0].track_id == 1


def test_below_low_score_is_ignored() -> None:
    tracker = started()
    track_id = confirmed_track(tracker)
    assert step(tracker, [box_at(100)], [CONFIG.low_score / 2])[0].track_id is None
    assert tracker.tracks[0].state is TrackState.LOST
    assert step(tracker, [box_at(100)])[0].track_id == track_id


def test_constant_velocity_bridges_a_frame_gap() -> None:
    # 8 px/frame; 12 frames skipped (frames dropped under load): the box has moved a box width and
    # more, and only the predicted box still overlaps it
    tracker = Camera(tuned(min_hits=1))
    for frame in range(1, 11):
        track_id = step(tracker, [box_at(8.0 * frame)], frame=frame)[0].track_id
    assert step(tracker, [box_at(8.0 * 23)], frame=23)[0].track_id == track_id


def test_a_frame_gap_counts_towards_max_age() -> None:
    tracker = Camera(tuned(max_age_s=5.5 / FPS))
    step(tracker, [box_at(100)], frame=1)
    step(tracker, [], frame=2 + 5)
    assert tracker.tracks == ()


def test_outputs_follow_the_input_order() -> None:
    tracker = Camera(TrackerConfig())
    boxes = [box_at(0), box_at(200), box_at(400)]
    out = step(tracker, boxes, [0.95, 0.05, 0.99], [PERSON, PERSON, CAR])
    assert [o.box for o in out] == boxes
    assert [o.label for o in out] == [PERSON, PERSON, CAR]
    assert [o.track_id for o in out] == [1, None, 2]
    assert step(tracker, []) == []


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        IoUTracker().update(np.zeros((2, 4)), np.zeros(3), np.zeros(2), time_s=0.0)


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="low_score"):
        TrackerConfig(low_score=0.8, high_score=0.5)
    with pytest.raises(ValueError, match="match_iou"):
        TrackerConfig(match_iou=0.0)


# --- per-camera id namespaces -------------------------------------------------------------------


def people(*xs: float, score: float = 0.95, class_id: int = PERSON) -> list[Detection]:
    return [Detection(label="person", class_id=class_id, score=score, box=box_at(x)) for x in xs]


def test_ids_never_leak_across_cameras() -> None:
    trackers = MultiCameraTracker()
    # the same scene on cameras a and b, other people on c, interleaved frame by frame
    ids: dict[str, set[int]] = {"a": set(), "b": set(), "c": set()}
    for frame in range(20):
        for camera, xs in (("a", [0, 200]), ("b", [0, 200]), ("c", [400 - 5 * frame])):
            out = trackers.update(camera, people(*(x + frame for x in xs)), time_s=frame / FPS)
            ids[camera] |= {d.track_id for d in out if d.track_id is not None}
    assert ids == {"a": {1, 2}, "b": {1, 2}, "c": {1}}
    # b's boxes lie exactly on a's tracks, yet each camera kept its own two tracks
    assert [t.track_id for t in trackers.tracker("a").tracks] == [1, 2]
    assert [t.track_id for t in trackers.tracker("b").tracks] == [1, 2]
    assert trackers.live_tracks() == 5


def test_a_new_camera_gets_no_old_tracks() -> None:
    trackers = MultiCameraTracker(tuned(min_hits=2))
    for frame in range(5):
        trackers.update("a", people(100), time_s=frame / FPS)
    trackers.update("b", [], time_s=5 / FPS)
    assert trackers.update("b", people(100), time_s=6 / FPS)[0].track_id is None  # a's track is not b's
    assert trackers.update("b", people(100), time_s=7 / FPS)[0].track_id == 1


def test_records_keep_their_fields_and_order() -> None:
    trackers = MultiCameraTracker()
    dets = people(0, 200) + people(400, class_id=CAR, score=0.05)
    out = trackers.update("a", dets, time_s=7 / FPS)
    assert [replace(d, track_id=None) for d in out] == dets
    assert [d.track_id for d in out] == [1, 2, None]


def test_drop_starts_a_camera_over() -> None:
    trackers = MultiCameraTracker()
    for camera in ("a", "b"):
        for frame in range(3):
            trackers.update(camera, people(100, 300), time_s=frame / FPS)
    trackers.drop("a")
    assert trackers.live_tracks() == 2, "b's two tracks"
    # the new owner's tracker: fresh, and its first frame's objects get ids at once (from 1: the
    # dropped tracker had given this box id 2)
    assert trackers.update("a", people(300), time_s=3 / FPS)[0].track_id == 1
    assert [t.track_id for t in trackers.tracker("b").tracks] == [1, 2]
    trackers.drop("unknown")  # not an error


# --- synthetic crossings and occlusions ---------------------------------------------------------


@dataclass(frozen=True)
class Walker:
    """A person walking a straight line: box size (w, h), position of the top-left at frame 0."""

    x: float
    y: float
    vx: float
    vy: float
    w: float = 40.0
    h: float = 100.0
    first: int = 0
    last: int = 10**9

    def box(self, frame: int) -> NDArray[np.float64]:
        x, y = self.x + self.vx * frame, self.y + self.vy * frame
        return np.array([x, y, x + self.w, y + self.h])


@dataclass(frozen=True)
class Scene:
    walkers: tuple[Walker, ...]
    frames: int
    pillars: tuple[tuple[float, float, float, float], ...] = ()  # static occluders, xyxy
    jitter_px: float = 0.0
    drop_rate: float = 0.0
    false_positive_rate: float = 0.0  # per frame
    seed: int = 0


def coverage(box: NDArray[np.float64], cover: NDArray[np.float64]) -> float:
    """Share of ``box``'s area that ``cover`` hides."""
    w = max(0.0, min(box[2], cover[2]) - max(box[0], cover[0]))
    h = max(0.0, min(box[3], cover[3]) - max(box[1], cover[1]))
    return w * h / ((box[2] - box[0]) * (box[3] - box[1]))


def render(scene: Scene) -> list[tuple[NDArray, NDArray, NDArray, NDArray]]:
    """Per frame: ground-truth ids and boxes, and what a detector would report.

    A person hidden by more than 70 % (by a pillar, or by someone nearer the camera: lower feet)
    is missed; one hidden by 30–70 % is found with a low score, as real detectors do.
    """
    rng = np.random.default_rng(scene.seed)
    frames = []
    for frame in range(scene.frames):
        present = [(i, w.box(frame)) for i, w in enumerate(scene.walkers) if w.first <= frame <= w.last]
        gt_ids = np.array([i + 1 for i, _ in present], dtype=np.int64)
        gt_boxes = np.array([b for _, b in present]).reshape(-1, 4)
        dets, scores = [], []
        for i, box in present:
            covers = [coverage(box, np.array(p)) for p in scene.pillars]
            covers += [coverage(box, other) for j, other in present if j != i and other[3] > box[3]]
            hidden = max(covers, default=0.0)
            if hidden > 0.7 or rng.random() < scene.drop_rate:
                continue
            dets.append(box + rng.normal(0, scene.jitter_px, 4))
            scores.append(rng.uniform(0.2, 0.6) if hidden > 0.3 else rng.uniform(0.85, 1.0))
        if rng.random() < scene.false_positive_rate:
            x, y = rng.uniform(0, 600), rng.uniform(0, 380)
            dets.append(np.array([x, y, x + 40, y + 100]))
            scores.append(rng.uniform(0.3, 0.95))
        frames.append((gt_ids, gt_boxes, np.array(dets).reshape(-1, 4), np.array(scores)))
    return frames


def track_and_score(frames: list[tuple[NDArray, NDArray, NDArray, NDArray]], config: TrackerConfig = CONFIG
                    ) -> dict[str, float]:  # fmt: skip
    """Run the tracker over rendered frames and score it (MOTChallenge rules: a hit is IoU >= 0.5)."""
    tracker = IoUTracker(config)
    acc = mm.MOTAccumulator(auto_id=True)
    for frame, (gt_ids, gt_boxes, det_boxes, det_scores) in enumerate(frames, start=1):
        out = tracker.update(det_boxes, det_scores, np.zeros(len(det_scores)), time_s=frame / FPS)
        tracked = [o for o in out if o.track_id is not None]
        hyp_boxes = np.array([o.box for o in tracked]).reshape(-1, 4)
        acc.update(gt_ids, [o.track_id for o in tracked], iou_distance(gt_boxes, hyp_boxes))
    metrics = ["mota", "idf1", "num_switches", "num_fragmentations", "num_unique_objects"]
    row = mm.metrics.create().compute(acc, metrics=metrics).iloc[0]
    return {name: float(row[name]) for name in metrics}


def iou_distance(gt_boxes: NDArray, hyp_boxes: NDArray) -> NDArray:
    """motmetrics' distance, 1 - IoU with NaN below 0.5 (its own iou_matrix fails on numpy 2)."""
    distance = 1.0 - iou_matrix_np(gt_boxes, hyp_boxes)
    distance[distance > 0.5] = np.nan
    return distance


def test_two_people_cross_without_swapping_ids() -> None:
    # they walk at each other on the same line; while they pass, the nearer one (feet 10 px lower)
    # hides the other: 6 frames with a low-score detection of them, 3 frames with none
    scene = Scene((Walker(40, 100, 3, 0), Walker(560, 110, -3, 0)), frames=180, jitter_px=1.0)
    result = track_and_score(render(scene))
    assert result["num_switches"] == 0
    assert result["idf1"] > 0.9


def test_a_person_behind_a_pillar_keeps_their_id() -> None:
    # hidden for 26 frames (1 s at 25 fps), inside max_age_s; the velocity carries the box across
    scene = Scene((Walker(20, 150, 4, 0.5),), frames=150, pillars=((290, 0, 410, 480),), jitter_px=1.0)
    frames = render(scene)
    assert sum(len(f[2]) == 0 for f in frames) >= 20  # the pillar really hides them
    result = track_and_score(frames)
    assert result["num_switches"] == 0
    assert result["idf1"] > 0.85  # 0.89: the hidden frames are misses, and count against it


def crowd(seed: int) -> Scene:
    """12 people crossing a 640x480 view left and right over 300 frames at 2–4 px/frame, a pillar,
    5 % missed detections, 2 px box jitter and a false positive every fifth frame."""
    rng = np.random.default_rng(100 + seed)
    walkers = []
    for i in range(12):
        going_right = i % 2 == 0
        walkers.append(Walker(x=-30.0 if going_right else 630.0, y=rng.uniform(60, 320),
                              vx=rng.uniform(2, 4) * (1 if going_right else -1), vy=rng.uniform(-0.5, 0.5),
                              first=int(rng.integers(0, 120))))  # fmt: skip
    return Scene(tuple(walkers), frames=300, pillars=((300, 200, 340, 480),), jitter_px=2.0,
                 drop_rate=0.05, false_positive_rate=0.2, seed=seed)  # fmt: skip


def test_crowds_with_crossings_occlusions_and_noise() -> None:
    results = [track_and_score(render(crowd(seed))) for seed in range(5)]
    # Five crowds hold 89 pairs of people of whom one hides the other by more than 30 % at some
    # point. Measured with CONFIG: 17 id switches in all (3, 7, 2, 2, 3), IDF1 0.79–0.90 (14 with
    # the frame-counting tracker before ages went to seconds; one that bridged no occlusions made
    # 73). The bound
    # leaves room for a few more switches from small changes to the motion model or the matching,
    # and fails a tracker that re-numbers people after occlusions.
    assert sum(r["num_switches"] for r in results) <= 20
    assert min(r["idf1"] for r in results) >= 0.75


# --- real detections: TUD-Campus ----------------------------------------------------------------


def load_mot(folder: Path) -> list[tuple[NDArray, NDArray, NDArray, NDArray]]:
    """A MOTChallenge sequence (``det.txt``, ``gt.txt``: ``frame,id,x,y,w,h,conf,...``, 1-based
    frames) in :func:`render`'s per-frame form: gt ids, gt boxes, detection boxes, scores."""
    info = dict(
        line.split("=", 1) for line in (folder / "seqinfo.ini").read_text().splitlines() if "=" in line
    )
    det = np.loadtxt(folder / "det.txt", delimiter=",", ndmin=2)
    gt = np.loadtxt(folder / "gt.txt", delimiter=",", ndmin=2)
    frames = []
    for frame in range(1, int(info["seqLength"]) + 1):
        dets, truth = det[det[:, 0] == frame], gt[gt[:, 0] == frame]
        gt_ids = truth[:, 1].astype(np.int64)
        frames.append((gt_ids, xywh_to_xyxy(truth[:, 2:6]), xywh_to_xyxy(dets[:, 2:6]), dets[:, 6]))
    return frames


def xywh_to_xyxy(boxes: NDArray) -> NDArray:
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def test_tud_campus_mota_and_idf1_floors() -> None:
    result = track_and_score(load_mot(data_dir() / "mot" / "TUD-Campus"))
    # Measured (deterministic): MOTA 0.630, IDF1 0.747, 1 id switch. The ceiling with these
    # detections (each one given its true id) is MOTA 0.735, IDF1 0.848; supervision's ByteTrack
    # scores 0.596 / 0.666 (bench/tracker.py). The floors sit about 0.025 MOTA (≈ 9 of 359
    # ground-truth boxes missed, spurious or switched) and 0.05 IDF1 (about one long track split
    # in two) below the measurement, so a changed tie-break in numpy/scipy passes and a real
    # regression does not; both floors stay above ByteTrack's figures.
    assert result["mota"] >= 0.60
    assert result["idf1"] >= 0.70
