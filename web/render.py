"""A live frame as the console shows it: the camera's JPEG with its detections' boxes drawn."""

from __future__ import annotations

import cv2

from shared.errors import DecodeError
from shared.imaging import caption, decode_bgr, draw_boxes
from shared.schemas import Box, Detections, Frame


def annotate(frame: Frame, detections: Detections | None, *, jpeg_quality: int) -> tuple[bytes, bool]:
    """The JPEG to send and whether boxes were drawn. A JPEG frame without objects goes out as it
    came (no decode, no encode); raises DecodeError for data that does not decode."""
    objects = detections.objects if detections is not None else ()
    if not objects and frame.codec == "jpeg":
        return frame.data, False
    image = decode_bgr(frame)
    if detections is not None and objects:
        sx, sy = frame.width / detections.width, frame.height / detections.height
        boxes: list[Box] = [(o.box[0] * sx, o.box[1] * sy, o.box[2] * sx, o.box[3] * sy) for o in objects]
        image = draw_boxes(image, boxes, [caption(o) for o in objects])
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise DecodeError("JPEG encode failed")
    return encoded.tobytes(), bool(objects)
