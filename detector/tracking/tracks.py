"""One tracked object: its box's motion model and its life cycle.

Life cycle::

    tentative ──min_hits hits within confirm_s──▶ confirmed ◀──match── lost
        │                                             │                │
        └──unseen > tentative_age_s──▶ removed        └──miss──▶ lost  └──unseen > max_age_s──▶ removed

Ages are seconds of frame time, so a track means the same at 5 and at 25 fps. A track gets its id
when it is confirmed, so tentative tracks that die never use up an id.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from shared.schemas import Box

# Noise of the motion model, as fractions of the box's own size (ByteTrack's / BoT-SORT's values):
# how far a box may wander per frame (position, velocity) and how noisy a detector's box is. Those
# values are per frame of MOTChallenge's video; the filter counts time in such frames of
# 1 / MOTION_RATE_HZ seconds, whatever the camera's own rate.
MOTION_RATE_HZ = 25.0
POSITION_STD = 1 / 20
VELOCITY_STD = 1 / 160
MEASUREMENT_STD = 1 / 20
MIN_SIDE_PX = 1.0


class TrackState(enum.Enum):
    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    LOST = "lost"
    REMOVED = "removed"


@dataclass(eq=False)
class BoxMotion:
    """Constant-velocity Kalman filter on a box's (cx, cy, w, h).

    The four axes move independently (no term couples them), so the 8-state filter of SORT and
    ByteTrack is exactly four 2-state filters, written out in plain floats: per axis the state is
    position and velocity (per 1 / ``MOTION_RATE_HZ`` s), and the covariance is
    ``[[p_pp, p_pv], [p_pv, p_vv]]``.
    Noise scales with the box's width (cx, w) or height (cy, h), as in BoT-SORT.
    """

    mean: list[float]
    velocity: list[float]
    p_pp: list[float]
    p_pv: list[float]
    p_vv: list[float]

    @classmethod
    def start(cls, box: Box) -> BoxMotion:
        mean = _to_cxcywh(box)
        scales = _scales(mean)
        return cls(
            mean=mean,
            velocity=[0.0] * 4,
            p_pp=[(2 * POSITION_STD * s) ** 2 for s in scales],
            p_pv=[0.0] * 4,
            p_vv=[(10 * VELOCITY_STD * s) ** 2 for s in scales],
        )

    def predict(self, seconds: float) -> None:
        """Move ``seconds`` ahead: x += v·dt, and the covariance grows."""
        if seconds <= 0:
            return
        frames = seconds * MOTION_RATE_HZ
        scales = _scales(self.mean)
        for axis in range(4):
            q_pos = (POSITION_STD * scales[axis]) ** 2 * frames
            q_vel = (VELOCITY_STD * scales[axis]) ** 2 * frames
            p_pv, p_vv = self.p_pv[axis], self.p_vv[axis]
            self.mean[axis] += self.velocity[axis] * frames
            self.p_pp[axis] += 2 * frames * p_pv + frames * frames * p_vv + q_pos
            self.p_pv[axis] = p_pv + frames * p_vv
            self.p_vv[axis] = p_vv + q_vel
        self.mean[2] = max(self.mean[2], MIN_SIDE_PX)
        self.mean[3] = max(self.mean[3], MIN_SIDE_PX)

    def correct(self, box: Box) -> None:
        """Fold in a measured box (the Kalman update)."""
        measured = _to_cxcywh(box)
        scales = _scales(self.mean)
        for axis in range(4):
            noise = (MEASUREMENT_STD * scales[axis]) ** 2
            p_pp, p_pv = self.p_pp[axis], self.p_pv[axis]
            innovation_var = p_pp + noise
            gain_pos, gain_vel = p_pp / innovation_var, p_pv / innovation_var
            residual = measured[axis] - self.mean[axis]
            self.mean[axis] += gain_pos * residual
            self.velocity[axis] += gain_vel * residual
            self.p_pp[axis] = (1 - gain_pos) * p_pp
            self.p_pv[axis] = (1 - gain_pos) * p_pv
            self.p_vv[axis] -= gain_vel * p_pv

    def hold_size(self) -> None:
        """Stop the box growing or shrinking (while unseen, a size trend is mostly noise)."""
        self.velocity[2] = self.velocity[3] = 0.0

    @property
    def box(self) -> Box:
        cx, cy, w, h = self.mean
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


@dataclass(eq=False)
class Track:
    """A tracked object of one class. ``track_id`` is ``None`` until the track is confirmed.
    Times are the frames' times in seconds."""

    label: int
    score: float
    motion: BoxMotion
    state: TrackState = TrackState.TENTATIVE
    track_id: int | None = None
    hits: int = 1
    unseen_s: float = 0.0
    hit_times_s: deque[float] = field(default_factory=deque)  # while tentative: its hits, oldest first

    @classmethod
    def start(cls, box: Box, score: float, label: int, *, time_s: float) -> Track:
        return cls(label=label, score=score, motion=BoxMotion.start(box), hit_times_s=deque([time_s]))

    @property
    def box(self) -> Box:
        """The track's current (after :meth:`predict`: predicted) box, xyxy."""
        return self.motion.box

    @property
    def alive(self) -> bool:
        return self.state is not TrackState.REMOVED

    def predict(self, seconds: float) -> None:
        self.motion.predict(seconds)

    def hit(self, box: Box, score: float, *, time_s: float) -> None:
        """A detection continued this track: a lost track is found again."""
        self.motion.correct(box)
        self.score = score
        self.hits += 1
        self.unseen_s = 0.0
        if self.state is TrackState.TENTATIVE:
            self.hit_times_s.append(time_s)
        elif self.state is TrackState.LOST:
            self.state = TrackState.CONFIRMED

    def hits_within(self, window_s: float, *, now_s: float) -> int:
        """The tentative track's hits in the last ``window_s`` seconds (older ones are forgotten)."""
        while self.hit_times_s and self.hit_times_s[0] < now_s - window_s:
            self.hit_times_s.popleft()
        return len(self.hit_times_s)

    def confirm(self, track_id: int) -> None:
        if self.state is not TrackState.TENTATIVE:
            raise ValueError(f"only a tentative track can be confirmed, not a {self.state.value} one")
        self.state = TrackState.CONFIRMED
        self.track_id = track_id
        self.hit_times_s.clear()

    def miss(self, *, seconds: float, max_age_s: float, tentative_age_s: float) -> None:
        """No detection continued this track in a frame ``seconds`` after the previous one.

        A confirmed track is lost. A lost track is removed once it has gone unseen for more than
        ``max_age_s``, a tentative one for more than ``tentative_age_s``.
        """
        self.unseen_s += seconds
        if self.state is TrackState.CONFIRMED:
            self.state = TrackState.LOST
            self.motion.hold_size()
        limit_s = tentative_age_s if self.state is TrackState.TENTATIVE else max_age_s
        if self.unseen_s > limit_s:
            self.state = TrackState.REMOVED


def _to_cxcywh(box: Box) -> list[float]:
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, MIN_SIDE_PX), max(y2 - y1, MIN_SIDE_PX)
    return [x1 + w / 2, y1 + h / 2, w, h]


def _scales(cxcywh: list[float]) -> tuple[float, float, float, float]:
    w, h = cxcywh[2], cxcywh[3]
    return (w, h, w, h)
