"""The benchmarks' camera frames: JPEGs of ``vtest.avi`` (real CCTV) at a chosen size, as ingest
publishes them."""

from __future__ import annotations

from pathlib import Path

import cv2

VTEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "vtest.avi"


def vtest_jpegs(count: int, width: int, height: int, quality: int = 85) -> list[bytes]:
    """``count`` frames of vtest.avi (looping) resized to ``width``×``height`` (area averaging when
    shrinking, bilinear when enlarging) and JPEG-encoded."""
    capture = cv2.VideoCapture(str(VTEST))
    jpegs: list[bytes] = []
    while len(jpegs) < count:
        ok, image = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        shrinking = width * height < image.shape[0] * image.shape[1]
        image = cv2.resize(
            image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        )
        jpegs.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
    capture.release()
    return jpegs


def vtest_clip(fps: float, width: int, height: int, quality: int = 85) -> list[bytes]:
    """All of vtest.avi, in order, sampled to ``fps`` (as ingest samples a camera), resized and
    JPEG-encoded: the frames a live camera filming that scene would publish."""
    capture = cv2.VideoCapture(str(VTEST))
    step = max(1, round((capture.get(cv2.CAP_PROP_FPS) or fps) / fps))
    jpegs: list[bytes] = []
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if index % step == 0:
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            jpegs.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes())
        index += 1
    capture.release()
    return jpegs
