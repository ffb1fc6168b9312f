"""Benchmark: how far bfloat16 actions are from float32 ones, in LeRobot units.

policy_node's ``dtype`` auto is float32 on every device, as LeRobot infers; ``dtype:=bfloat16``
casts the VLM and action expert (PolicyRuntime). This runs both dtypes through PolicyRuntime
on the same N observations (random images and joint states, seeded), each observation with
the same flow-matching noise for both, and prints max |bfloat16 - float32| per joint and
overall in LeRobot units (degrees; gripper 0..100), next to the spread of the float32 actions
for scale, and the seconds per chunk. On the CPU, and on CUDA when torch sees one. The test
checkpoints have random weights: a trained checkpoint (--policy-path) may deviate otherwise.
Printed, not asserted:

    python bench/precision.py                                  # tiny test checkpoint
    python bench/precision.py --full-size --observations 20    # SmolVLA's 450M architecture
    python bench/precision.py --policy-path CKPT --device cuda
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from smolvla_ros.policy.runtime import PolicyRuntime, PolicyRuntimeConfig
from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint
from smolvla_ros.units import SO101_JOINTS

CR = "\r" if sys.stdout.isatty() else ""  # progress on one line in a terminal
TASKS = ("pick up the cube", "put the pen in the cup", "open the gripper", "fold the cloth")


def observations(camera_names, count: int, height: int, width: int, seed: int = 0) -> list[tuple]:
    """(images, state, task) with random pictures and a plausible SO-101 state."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        images = {name: rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for name in camera_names}
        state = np.append(rng.uniform(-60.0, 60.0, 5), rng.uniform(0.0, 100.0))
        out.append((images, state, TASKS[k % len(TASKS)]))
    return out


def chunks(checkpoint: str, device: str, dtype: str, count: int, height: int,
           width: int) -> tuple[np.ndarray, float]:
    """The chunks (N, steps, joints) of the N seeded observations (the same for every call),
    observation k with noise seed k, and the median seconds per chunk."""
    runtime = PolicyRuntime(PolicyRuntimeConfig(checkpoint, device=device, dtype=dtype))
    runtime.warm_up()
    obs = observations(runtime.camera_names, count, height, width)
    out, seconds = [], []
    for k, (images, state, task) in enumerate(obs):
        started = time.perf_counter()
        out.append(runtime.infer(images, state, task, noise=runtime.make_noise(k)))
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - started)
        if sys.stdout.isatty() or (k + 1) % max(1, len(obs) // 5) == 0 or k + 1 == len(obs):
            print(f"{CR}  {device} {dtype}: {k + 1}/{len(obs)} chunks, {seconds[-1]:.2f} s the last",
                  end="" if sys.stdout.isatty() else "\n", flush=True)
    if sys.stdout.isatty():
        print()
    del runtime
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return np.stack(out), statistics.median(seconds)


def report(device: str, fp32: np.ndarray, bf16: np.ndarray, times: tuple[float, float]) -> None:
    delta = np.abs(bf16 - fp32)  # (N, steps, joints)
    worst_per_obs = delta.max(axis=(1, 2))
    spread = fp32.max(axis=(0, 1)) - fp32.min(axis=(0, 1))
    print(f"{device}: {len(fp32)} observations x {fp32.shape[1]} actions; float32 "
          f"{times[0]:.3f} s/chunk, bfloat16 {times[1]:.3f} s/chunk (median)")
    print(f"  {'joint':<14} {'max |d|':>9} {'mean |d|':>9} {'fp32 spread':>12}")
    for j, name in enumerate(SO101_JOINTS[: fp32.shape[2]]):
        print(f"  {name:<14} {delta[..., j].max():>9.4f} {delta[..., j].mean():>9.4f} "
              f"{spread[j]:>12.2f}")
    print(f"  {'overall':<14} {delta.max():>9.4f} {delta.mean():>9.4f}   (per observation: median "
          f"max {np.median(worst_per_obs):.4f}, worst {worst_per_obs.max():.4f})")
    print("  units: degrees for the joints, 0..100 for the gripper (LeRobot's, use_degrees)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true",
                        help="SmolVLA's 450M architecture, random weights (~1.8 GB; slow on a CPU)")
    parser.add_argument("--policy-path", default="", help="measure this checkpoint instead")
    parser.add_argument("--observations", type=int, default=20, help="how many (default 20)")
    parser.add_argument("--device", action="append", default=[],
                        help="cpu, cuda, cuda:1 (repeatable); default: cpu, and cuda if torch sees one")
    parser.add_argument("--image-size", default="480x640", help="camera images, HEIGHTxWIDTH")
    args = parser.parse_args()
    if args.observations < 1:
        parser.error("--observations must be at least 1")
    height, width = (int(v) for v in args.image_size.lower().split("x"))
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as folder:
        if args.policy_path:
            checkpoint, what = args.policy_path, args.policy_path
        else:
            print("writing the test checkpoint...", flush=True)
            checkpoint = str(make_test_checkpoint(Path(folder) / "ckpt", full_size=args.full_size))
            what = f"{'full-size (450M)' if args.full_size else 'tiny'} SmolVLA, random weights"
        print(f"{what}; {args.observations} observations, camera images {width}x{height}; the "
              "same noise per observation for both dtypes", flush=True)
        results = {}
        for device in devices:
            shape = (args.observations, height, width)
            fp32, fp32_s = chunks(checkpoint, device, "float32", *shape)
            bf16, bf16_s = chunks(checkpoint, device, "bfloat16", *shape)
            results[device] = (fp32, bf16, (fp32_s, bf16_s))
    for device, (fp32, bf16, times) in results.items():
        report(device, fp32, bf16, times)


if __name__ == "__main__":
    main()
