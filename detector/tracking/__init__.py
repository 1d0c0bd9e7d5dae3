"""Multi-object tracking per camera: two-stage IoU matching of detections to tracks.

:class:`IoUTracker` follows one camera (numpy arrays in, one :class:`TrackedBox` per detection
out); :class:`MultiCameraTracker` keeps one per camera and speaks ``Detection`` records, so track
ids are scoped to their camera and never leak between streams. Pure numpy and scipy, no Redis; the
IoU is :func:`detector.boxes.iou_matrix_np`. See docs/tracking.md.
"""

from detector.tracking.iou_tracker import IoUTracker, MultiCameraTracker, TrackedBox
from detector.tracking.tracks import Track, TrackState

__all__ = ["IoUTracker", "MultiCameraTracker", "Track", "TrackState", "TrackedBox"]
