"""One tracked object: its box's motion model and its life cycle.

Life cycle::

    tentative ──min_hits matches in a row──▶ confirmed ◀──match── lost
        │                                        │                │
        └──miss──▶ removed                       └──miss──▶ lost  └──unseen > max_age frames──▶ removed

A track gets its id when it is confirmed, so tentative tracks that die never use up an id.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shared.schemas import Box

# Noise of the motion model, as fractions of the box's own size (ByteTrack's / BoT-SORT's values):
# how far a box may wander per frame (position, velocity) and how noisy a detector's box is.
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
    position and velocity (per frame), and the covariance is ``[[p_pp, p_pv], [p_pv, p_vv]]``.
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

    def predict(self, frames: float = 1.0) -> None:
        """Move ``frames`` frames ahead: x += v·dt, and the covariance grows."""
        if frames <= 0:
            return
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
    """A tracked object of one class. ``track_id`` is ``None`` until the track is confirmed."""

    label: int
    score: float
    motion: BoxMotion
    state: TrackState = TrackState.TENTATIVE
    track_id: int | None = None
    hits: int = 1
    misses: int = 0

    @classmethod
    def start(cls, box: Box, score: float, label: int) -> Track:
        return cls(label=label, score=score, motion=BoxMotion.start(box))

    @property
    def box(self) -> Box:
        """The track's current (after :meth:`predict`: predicted) box, xyxy."""
        return self.motion.box

    @property
    def alive(self) -> bool:
        return self.state is not TrackState.REMOVED

    def predict(self, frames: float = 1.0) -> None:
        self.motion.predict(frames)

    def hit(self, box: Box, score: float) -> None:
        """A detection continued this track: a lost track is found again."""
        self.motion.correct(box)
        self.score = score
        self.hits += 1
        self.misses = 0
        if self.state is TrackState.LOST:
            self.state = TrackState.CONFIRMED

    def confirm(self, track_id: int) -> None:
        if self.state is not TrackState.TENTATIVE:
            raise ValueError(f"only a tentative track can be confirmed, not a {self.state.value} one")
        self.state = TrackState.CONFIRMED
        self.track_id = track_id

    def miss(self, *, frames: int = 1, max_age: int) -> None:
        """No detection continued this track for ``frames`` frames.

        A tentative track is dropped at once; a confirmed one is lost, and removed once it has
        gone unseen for more than ``max_age`` frames.
        """
        self.misses += frames
        if self.state is TrackState.TENTATIVE:
            self.state = TrackState.REMOVED
            return
        if self.state is TrackState.CONFIRMED:
            self.state = TrackState.LOST
            self.motion.hold_size()
        if self.misses > max_age:
            self.state = TrackState.REMOVED


def _to_cxcywh(box: Box) -> list[float]:
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, MIN_SIDE_PX), max(y2 - y1, MIN_SIDE_PX)
    return [x1 + w / 2, y1 + h / 2, w, h]


def _scales(cxcywh: list[float]) -> tuple[float, float, float, float]:
    w, h = cxcywh[2], cxcywh[3]
    return (w, h, w, h)
