"""Benchmark: the one-process bringup (``smolvla-ros bringup --robot sim``) at CPython's GIL
switch interval (5 ms) vs the one bringup sets (``smolvla_ros.bringup.SWITCH_INTERVAL_S``).

In one process every node's threads share one interpreter lock, and a thread that released it
for a C call (a torch op, a physics step, an rclpy wait) waits up to the switch interval to
take it back from a thread running Python. Each run records an episode with the tiny
checkpoint, runs alternate between the two intervals, and each prints what a user would see:
chunks published, median inference latency, the joint_states rate the bringup's monitor
received (the simulation publishes 100 Hz), stale-input holds, and from the recorded bag
(read back by the converter's reader) the simulated joints' and the cameras' longest gap.
Printed, not asserted:

    python bench/bringup_gil.py [--seconds 30] [--runs 2]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from smolvla_ros.bringup import SWITCH_INTERVAL_S
from smolvla_ros.recording.bag_reader import read_bag
from smolvla_ros.units import SO101_JOINTS

CPYTHON_DEFAULT_S = 0.005
RUN = ("import sys, smolvla_ros.bringup as bringup; bringup.SWITCH_INTERVAL_S = {interval}; "
       "from smolvla_ros.cli import main; sys.exit(main(sys.argv[1:]))")


def bringup(interval: float, checkpoint: Path, seconds: float, episodes: Path) -> dict[str, float]:
    command = [sys.executable, "-c", RUN.format(interval=interval), "bringup", "--robot", "sim",
               "--policy-path", str(checkpoint), "--instruction", "pick up the cube",
               "--duration", str(seconds), "--record", str(episodes)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 300)
    if result.returncode:
        raise SystemExit(f"bringup failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    output = result.stdout + result.stderr

    def number(pattern: str) -> float:
        found = re.search(pattern, output)
        return float(found.group(1)) if found else float("nan")
    bag = read_bag(episodes / "episode_000000", SO101_JOINTS)
    return {"chunks": number(r"chunks published:\s+(\d+)"),
            "latency_ms": number(r"inference latency:\s+median (\d+) ms"),
            "joint_hz": number(r"joint_states:\s+([\d.]+) Hz"),
            "holds": len(re.findall(r"holding: (?:joint_states is|camera '\w+' image is)", output)),
            "joint_gap_s": _longest_gap(bag.follower.stamps),
            "image_gap_s": max(_longest_gap(camera.stamps) for camera in bag.cameras.values())}


def _longest_gap(stamps_ns: np.ndarray) -> float:
    return float(np.diff(stamps_ns).max(initial=0)) * 1e-9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="each bringup's duration")
    parser.add_argument("--runs", type=int, default=2, help="runs per interval, alternating")
    args = parser.parse_args()
    intervals = (CPYTHON_DEFAULT_S, SWITCH_INTERVAL_S)
    results: dict[float, list[dict[str, float]]] = {interval: [] for interval in intervals}
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "ckpt"
        subprocess.run(["smolvla-ros", "make-test-checkpoint", str(checkpoint)], check=True,
                       capture_output=True)
        for run in range(args.runs):
            for interval in intervals if run % 2 == 0 else intervals[::-1]:
                episodes = Path(folder) / f"episodes_{interval}_{run}"
                results[interval].append(bringup(interval, checkpoint, args.seconds, episodes))
                print(f"  run {run + 1}, switch interval {interval * 1e3:g} ms: {results[interval][-1]}",
                      flush=True)
    print(f"tiny SmolVLA, sim bringup in one process, {args.seconds:g} s each, {args.runs} runs "
          "per interval (medians)")
    print(f"  {'switch interval':<16} {'chunks':>7} {'latency ms':>11} {'joint_states Hz':>16} "
          f"{'stale holds':>12} {'joint gap s':>12} {'image gap s':>12}")
    for interval in intervals:
        rows = results[interval]
        medians = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        print(f"  {interval * 1e3:>13g} ms {medians['chunks']:>7.0f} {medians['latency_ms']:>11.0f} "
              f"{medians['joint_hz']:>16.1f} {medians['holds']:>12.0f} {medians['joint_gap_s']:>12.2f} "
              f"{medians['image_gap_s']:>12.2f}")


if __name__ == "__main__":
    main()
