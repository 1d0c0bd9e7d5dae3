"""Bare ``predict`` frames per second on a GPU: the shipped pistol detector's weights at 640×640
input, fp16, channels-last, batch 1 to 64, with the JPEG decode on the device included and
excluded.

* Frames: 64 JPEGs (q85, 1280×720, a common camera size) made from ``vtest.avi`` (real CCTV).
* **excluded**: the frames are decoded once, onto the device; the timed loop is
  ``model.predict`` on a batch of them (letterbox to 640 on the device, inference, NMS), then a
  CUDA synchronise.
* **included**: the timed loop also decodes the batch's JPEG bytes, host to device, with
  ``DetectorRunner.decode_batch`` (one ``torchvision.io.decode_jpeg`` call, nvJPEG), as the
  detector service does.
* The checkpoint is the shipped one with its input size set to 640 (a fully convolutional
  network: same weights, 2.8× the pixels of its native 384), so the number of boxes reaching NMS
  is a trained detector's.

Needs a CUDA GPU (the device tool lends one to some sessions); ``--device cpu`` runs the same
code as a smoke check, without meaning for the figures.

    python bench/gpu.py --json /tmp/gpu.json            # about 2 minutes on one H100
    .venv/bin/python bench/gpu.py --device cpu --batches 1 2 --seconds 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.frames import vtest_jpegs
from detector.models.checkpoint import Checkpoint
from detector.runner import DEFAULT_WEIGHTS, DetectorRunner
from shared.schemas import Frame

WIDTH, HEIGHT = 1280, 720


def camera_frames(count: int) -> list[Frame]:
    return [
        Frame("bench", seq, 0, 0, WIDTH, HEIGHT, "jpeg", data)
        for seq, data in enumerate(vtest_jpegs(count, WIDTH, HEIGHT))
    ]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def frames_per_second(step, batch: int, seconds: float, device: torch.device) -> float:  # type: ignore[no-untyped-def]
    """Calls ``step(start)`` (one batch) for at least ``seconds`` after two warm-up calls."""
    for start in (0, batch):
        step(start % (64 - batch + 1))
    synchronize(device)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step((done * batch) % (64 - batch + 1))
        done += 1
    synchronize(device)
    return done * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--input-size", type=int, default=640)
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per figure")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if any(not 1 <= batch <= 64 for batch in args.batches):
        parser.error("batches must be 1..64")

    frames = camera_frames(64)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = dataclasses.replace(Checkpoint.load(DEFAULT_WEIGHTS), input_size=args.input_size)
        runner = DetectorRunner(checkpoint.save(Path(folder) / "wide.pt"), device=args.device)
    runner.device_decode = True
    device = torch.device(runner.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke check only)"
    print(f"{name}; torch {torch.__version__}; {runner.name} at {args.input_size}², engine {runner.engine}")
    print(
        f"frames: 64 JPEGs {WIDTH}x{HEIGHT} q85, {sum(len(f.data) for f in frames) / 64 / 1024:.0f} KiB each"
    )
    decoded, failed = runner.decode_batch(frames)
    assert not failed
    images = [item.image for item in decoded]

    rows = []
    print(f"\n{'batch':>5} {'decode excluded':>16} {'decode included':>16}   frames/s")
    with torch.inference_mode():
        for batch in args.batches:
            excluded = frames_per_second(
                lambda s, b=batch: runner.model.predict(images[s : s + b]), batch, args.seconds, device
            )
            included = frames_per_second(
                lambda s, b=batch: runner.model.predict(
                    [item.image for item in runner.decode_batch(frames[s : s + b])[0]]
                ),
                batch,
                args.seconds,
                device,
            )
            rows.append({"batch": batch, "fps_decode_excluded": excluded, "fps_decode_included": included})
            print(f"{batch:5d} {excluded:16.1f} {included:16.1f}", flush=True)
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    if args.json:
        args.json.write_text(
            json.dumps({"device": name, "input_size": args.input_size, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
