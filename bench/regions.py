"""What region inference costs per frame on this host (docs/detector.md#region-inference).

A still room (the first frame of ``one-by-one-person-detection.mp4``) at 1280×720 and 1920×1080,
JPEG as ingest publishes it, goes through the shipped detector on the default engine: the
whole-frame pass (decode at model scale + ``detect``) and the region step
(``detector.region_runner.RegionRunner.run``: the native decode, the crops, one ``predict`` call,
the merge) with 1, 2 and 4 crops. Medians of ``--repeats`` runs, interleaved.

    .venv/bin/python bench/regions.py
    .venv/bin/python bench/regions.py --engine torch --repeats 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cpu import describe_cpu
from detector.region_runner import RegionRunner
from detector.runner import DetectorRunner
from shared.config import RegionsConfig
from shared.schemas import Box
from tests.detector.scenes import noisy_frame, room

SIZES = ((1280, 720), (1920, 1080))
CROPS = (1, 2, 4)


def spread_boxes(width: int, height: int, count: int) -> tuple[Box, ...]:
    """``count`` small boxes far enough apart that each gets a crop of its own."""
    return tuple(
        (x, height / 2 - 10, x + 20, height / 2 + 10)
        for x in (width * (index + 0.5) / count - 10 for index in range(count))
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    runner = DetectorRunner(engine=args.engine, precision=args.precision)
    regions = RegionRunner(runner, RegionsConfig(enabled=True, max_regions=max(CROPS), min_frame_scale=1))
    print(f"{describe_cpu()}\nengine {runner.engine}, input {runner.input_size}")
    print(
        "frame       whole ms  " + "  ".join(f"{n} crop{'s' if n > 1 else ' '} ms (per crop)" for n in CROPS)
    )
    for width, height in SIZES:
        frame = noisy_frame("cam", 0, room((width, height)), ts_ns=0)
        plans = {n: regions.plan(frame, motion=spread_boxes(width, height, n)) for n in CROPS}
        assert all(len(plan) == n for n, plan in plans.items()), plans
        times: dict[object, list[float]] = {"whole": [], **{n: [] for n in CROPS}}
        for repeat in range(args.repeats + 1):  # the first round warms up
            started = time.perf_counter()
            decoded = runner.decode(frame)
            whole, _seconds = runner.detect([decoded])
            whole_s = time.perf_counter() - started
            for n in CROPS:
                outcome = regions.run([decoded], whole, [plans[n]])
                if repeat:
                    times[n].append(outcome.seconds)
            if repeat:
                times["whole"].append(whole_s)
        ms = {key: 1000 * statistics.median(values) for key, values in times.items()}
        cells = "  ".join(f"{ms[n]:8.1f} ({ms[n] / n:5.1f})      " for n in CROPS)
        print(f"{width}x{height:<5} {ms['whole']:8.1f}  {cells}")


if __name__ == "__main__":
    main()
