"""Benchmark: how long a policy with both OpenVINO runtimes takes to load, converting its graphs
or reading them from the graph cache (smolvla_ros.policy.openvino_cache).

Three loads of one checkpoint through PolicyRuntime, each in a fresh process as a node
starts: the default (LeRobot's path, no OpenVINO: the baseline), then ``vision_runtime`` and
``expert_runtime`` openvino in float32 into an empty cache (it converts and saves), then the
same again (it imports the graphs as the first load compiled them), then the same with the
compiled graphs deleted (it reads the graphs and compiles them, as the next load did before
2026-12-07). Printed per load:
seconds and the ratio to the baseline's, resident memory after load (anonymous +
file-backed), and max |action - baseline| over N observations
(the baseline's actions are LeRobot's, test_policy_runtime checks that); then the graphs'
sizes on disk (as converted, and as compiled for this CPU). Printed, not asserted:

    python bench/graph_cache.py                  # tiny model
    python bench/graph_cache.py --full-size      # SmolVLA's 450M architecture (~4 min)
    python bench/graph_cache.py --policy-path CKPT
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np

OPENVINO = {"vision_runtime": "openvino", "expert_runtime": "openvino"}
LOADS = (("default (no OpenVINO)", {}), ("OpenVINO, first load", OPENVINO),
         ("OpenVINO, next load", OPENVINO), ("OpenVINO, compiling", OPENVINO))


def load_and_run(checkpoint: str, modes: dict, cache: str, count: int, height: int, width: int,
                 results) -> None:
    """In a fresh process: load, note the memory, run ``count`` observations."""
    os.environ["SMOLVLA_ROS_OPENVINO_CACHE"] = cache
    from fast_modes import noise, observations  # bench/, beside this script

    from smolvla_ros.policy.runtime import PolicyRuntime, PolicyRuntimeConfig

    started = time.perf_counter()
    runtime = PolicyRuntime(PolicyRuntimeConfig(checkpoint, device="cpu", **modes))
    seconds = time.perf_counter() - started
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    memory = [int(status[key].split()[0]) / 2**20 for key in ("RssAnon", "RssFile")]  # GiB
    chunks = []
    for k, (images, state, task) in enumerate(observations(count, height, width)):
        named = {name: images[i] for i, name in enumerate(runtime.camera_names)}
        chunks.append(runtime.infer(named, state, task, noise=noise(k, runtime.noise_shape, "cpu")))
    results.put((seconds, memory, runtime.load_notes, np.stack(chunks)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true",
                        help="SmolVLA's 450M architecture, random weights (~1.8 GB)")
    parser.add_argument("--policy-path", default="", help="measure this checkpoint instead")
    parser.add_argument("--observations", type=int, default=3, help="how many (default 3)")
    parser.add_argument("--image-size", default="480x640", help="camera images, HEIGHTxWIDTH")
    args = parser.parse_args()
    height, width = (int(v) for v in args.image_size.lower().split("x"))
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter per load, as a node
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.policy_path
        if not checkpoint:
            from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint

            print("writing the test checkpoint...", flush=True)
            checkpoint = str(make_test_checkpoint(Path(folder) / "ckpt", full_size=args.full_size))
        cache = Path(folder) / "graphs"
        rows = []
        for label, modes in LOADS:
            if label == "OpenVINO, compiling":  # as the next load did before it kept them
                for blob in cache.glob("*/compiled-*.blob"):
                    blob.unlink()
            results = spawn.Queue()
            child = spawn.Process(target=load_and_run, args=(
                checkpoint, modes, str(cache), args.observations, height, width, results))
            child.start()
            rows.append((label, *results.get()))
            child.join()
            print(f"  {label}: {rows[-1][1]:.1f} s", *rows[-1][3], sep="\n    ", flush=True)
        baseline_s, baseline_actions = rows[0][1], rows[0][4]
        print(f"\n{checkpoint}; {args.observations} observations, camera images {width}x{height}")
        print(f"  {'load':<24} {'s':>7} {'ratio':>6}  {'resident GiB (anon + file)':>26}  max |Δ| (deg)")
        for label, seconds, (anon, mapped), _, actions in rows:
            delta = float(np.abs(actions - baseline_actions).max())
            print(f"  {label:<24} {seconds:7.1f} {seconds / baseline_s:6.2f}  "
                  f"{anon:12.2f} + {mapped:5.2f}{'':7}  {delta:.2g}")
        for graph in sorted(cache.iterdir()):
            graph_mb, compiled_mb = (sum(part.stat().st_size for part in graph.iterdir()
                                         if part.name.startswith("compiled-") == compiled) / 1e6
                                     for compiled in (False, True))
            print(f"  {graph.name.split('-')[0]} graph on disk: {graph_mb:.1f} MB, compiled for "
                  f"this CPU {compiled_mb:.1f} MB")


if __name__ == "__main__":
    main()
