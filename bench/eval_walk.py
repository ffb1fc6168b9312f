"""Benchmark: a chunk's processing with LeRobot's per-chunk eval() walk against the runtime's
check (smolvla_ros.policy.runtime.EvalModeKept).

LeRobot's ``predict_action_chunk`` puts the policy in eval mode on every call, walking all
its modules. One loaded PolicyRuntime (static cache, so each chunk's stages are timed as
bench/fast_modes.py times them) runs the same observations and noise both ways, alternating
A/B and B/A in one process. Printed per way: the median of the processing stage (everything
outside the model's ``sample_actions``: LeRobot's pre- and post-processing, the walk or the
check), the ratio, and max |action difference| between the two ways (the walk changes no
flag after the first, so 0 is expected). Printed, not asserted:

    python bench/eval_walk.py                                   # tiny model
    python bench/eval_walk.py --policy-path CKPT --dtype bfloat16 --observations 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from fast_modes import StageClock, observations  # bench/, beside this script

from smolvla_ros.policy.runtime import PolicyRuntime, PolicyRuntimeConfig
from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint

WAYS = ("LeRobot's eval() walk", "the runtime's check")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy-path", default="", help="a checkpoint; default: the tiny one")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16")
    parser.add_argument("--observations", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.policy_path or str(make_test_checkpoint(Path(folder) / "ckpt"))
        runtime = PolicyRuntime(PolicyRuntimeConfig(checkpoint, device="cpu", dtype=args.dtype,
                                                    static_cache=True))
        runtime.warm_up()
        check = runtime.policy.eval
        clock = StageClock(runtime.policy.model, "cpu")
        processing = {way: [] for way in WAYS}
        chunks = {way: [] for way in WAYS}
        print(f"{runtime.mode}, {len(check.modules)} modules, {args.observations} observations "
              "(640x480 cameras), each both ways", flush=True)
        for k, (images, state, task) in enumerate(observations(args.observations, 480, 640)):
            named = {name: images[i] for i, name in enumerate(runtime.camera_names)}
            for way in WAYS if k % 2 == 0 else WAYS[::-1]:
                runtime.policy.eval = check.lerobot_eval if way == WAYS[0] else check
                started = time.perf_counter()
                chunks[way].append(runtime.infer(named, state, task, noise=runtime.make_noise(k)))
                processing[way].append(clock.chunk(time.perf_counter() - started)[3])
        runtime.policy.eval = check
    medians = {way: statistics.median(processing[way]) * 1e3 for way in WAYS}
    for way in WAYS:
        print(f"  {way:<22} processing {medians[way]:6.2f} ms a chunk (median)")
    print(f"  ratio x{medians[WAYS[0]] / medians[WAYS[1]]:.2f}; max |action difference| "
          f"{np.abs(np.stack(chunks[WAYS[0]]) - np.stack(chunks[WAYS[1]])).max():.3g}")


if __name__ == "__main__":
    main()
