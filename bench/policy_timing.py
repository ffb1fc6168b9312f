"""Benchmark: starved control ticks per minute at 30 Hz for a range of inference delays.

The real controller and tiny model run with extra latency per inference (a slower machine
or a bigger model), and a trajectory executor follows the chunks at the control rate
(smolvla_ros.policy.dry_run). With the default threshold (next inference when half of a
50-action chunk is left) the arm should never starve while inference takes less than
25 / 30 = 0.83 s. A larger threshold starts the next inference earlier, but a chunk that
arrives with less than the threshold left starts the next at once, timed from a later
observation: with one inference at a time the latency must stay under the threshold's share of
a chunk, and under half of it whatever the threshold (--threshold shows it). Printed, not
asserted:

    python bench/policy_timing.py [--seconds 10] [--threshold 0.5] [--aggregate rtc]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from smolvla_ros.policy.controller import PolicyControllerConfig
from smolvla_ros.policy.dry_run import dry_run
from smolvla_ros.policy.runtime import PolicyRuntime, PolicyRuntimeConfig
from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint

DELAYS_S = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="run time per delay")
    parser.add_argument("--aggregate", default="replace", help="replace, weighted_average, rtc, ...")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="policy_node's chunk_threshold: the fraction left when the next starts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runtime = PolicyRuntime(PolicyRuntimeConfig(str(make_test_checkpoint(Path(folder) / "c"))))
        config = PolicyControllerConfig(fps=30.0, chunk_threshold=args.threshold,
                                        aggregate=args.aggregate)
        print(f"30 Hz control, 50-action chunks, threshold {args.threshold}, aggregate {args.aggregate}, "
              f"{args.seconds:.0f} s per delay (tiny model: ~25 ms of the latency is inference)")
        print(f"  {'added delay':>11}  {'chunks':>6}  {'ticks':>6}  {'starved':>7}  {'starved/min':>11}")
        for delay in DELAYS_S:
            result = dry_run(runtime, args.seconds, delay, config)
            minutes = result.ticks / config.fps / 60
            per_minute = result.starved_ticks / minutes if minutes else float("nan")
            print(f"  {delay:>9.1f} s  {result.chunks:>6}  {result.ticks:>6}  "
                  f"{result.starved_ticks:>7}  {per_minute:>11.0f}")


if __name__ == "__main__":
    main()
