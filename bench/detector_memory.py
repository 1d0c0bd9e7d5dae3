"""The detector's steady memory per engine: a :class:`~detector.runner.DetectorRunner` (the
service's model side) in a fresh process per engine row, run over ``--frames`` 16:9 frames of
``vtest.avi`` (decode, detect), its RSS (resident set: anonymous and file-backed pages) read
every 50 frames from ``/proc/self/status``, with the anonymous share and whether torch was
imported. Each child gets the service's own process settings: tcmalloc for torch, glibc told to
keep its memory for OpenVINO and ONNX Runtime.

    .venv/bin/python bench/detector_memory.py             # the four engine rows, ~1 minute
    .venv/bin/python bench/detector_memory.py --rows openvino-int8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._cpu import describe_cpu  # noqa: E402
from bench.frames import VTEST  # noqa: E402

ROWS = ("torch-fp32", "onnxruntime-fp32", "openvino-fp32", "openvino-int8")
READ_EVERY = 50


def crop_16_9(frame: np.ndarray) -> np.ndarray:
    height, width = frame.shape[:2]
    target = width * 9 // 16
    top = (height - target) // 2
    return np.ascontiguousarray(frame[top : top + target])


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(row: str, frames: int) -> None:
    """One engine row: build the runner, detect on ``frames`` frames, print the readings as JSON."""
    from detector.runner import DetectorRunner
    from shared.schemas import Frame

    engine, precision = row.split("-")
    runner = DetectorRunner(engine=engine, precision=precision, device="cpu")
    capture = cv2.VideoCapture(str(VTEST))
    jpegs = []
    while len(jpegs) < 50 and (read := capture.read())[0]:
        jpegs.append(cv2.imencode(".jpg", crop_16_9(read[1]))[1].tobytes())
    height, width = crop_16_9(read[1] if read[0] else np.zeros((576, 768, 3), np.uint8)).shape[:2]
    readings = []
    for index in range(frames):
        frame = Frame("bench", index, time.time_ns(), 0, width, height, "jpeg", jpegs[index % len(jpegs)])
        runner.detect(runner.decode_batch([frame])[0])
        if index % READ_EVERY == READ_EVERY - 1:
            readings.append(status_mb("VmRSS"))
    print(json.dumps({
        "engine": runner.engine, "rss_mb": readings, "anon_mb": status_mb("RssAnon"),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "torch": "torch" in sys.modules,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--child", choices=ROWS, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the readings here")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.frames)
        return
    from vigil.runtime import tcmalloc_path

    print(f"CPU: {describe_cpu()}; {os.cpu_count()} cores; {args.frames} frames 768x432 JPEG per row")
    results = []
    for row in args.rows:
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        env["LD_PRELOAD"] = (tcmalloc_path() or "") if row.startswith("torch") else ""
        done = subprocess.run([sys.executable, __file__, "--child", row, "--frames", str(args.frames)],
                              env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            print(f"{row:>16}: failed: {done.stderr.strip().splitlines()[-1:]}")
            continue
        reading = json.loads(lines[-1])
        results.append(reading)
        print(f"{reading['engine']:>16}: RSS {reading['rss_mb'][-1]:.0f} MB after {args.frames} frames "
              f"(every {READ_EVERY}: {', '.join(f'{mb:.0f}' for mb in reading['rss_mb'])}; peak "
              f"{reading['peak_mb']:.0f}; anonymous {reading['anon_mb']:.0f}); torch imported: "
              f"{reading['torch']}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
