"""Benchmark: what bounds a chunk on this CPU. The arithmetic of LeRobot's call, counted, against
the rate this machine multiplies matrices at, measured.

One chunk through LeRobot's own direct call (``SmolVLAPolicy.from_pretrained``, its saved
processors, two 640x480 cameras) is counted with torch's ``FlopCounterMode``: the matrix
products and attention of each part of the model (vision encoder + connector, the VLM's
prefix pass, the action expert's flow steps). Elementwise work (norms, activations, softmax
outside fused attention) is not counted, so the counts are a floor. The same process then
times torch's own matrix product at the model's largest shapes in float32, bfloat16 and int8,
and LeRobot's call itself. Printed per dtype: the time the counted arithmetic alone takes at
the best measured rate, and so the largest speed-up any mode multiplying in that dtype can
reach over LeRobot's float32 call on this machine, at the checkpoint's num_steps (fewer steps
are less arithmetic) (an exported runtime included: it multiplies the same matrices on the
same cores). torch's product is timed twice in float32 and bfloat16: as ``torch.mm`` and as
oneDNN's product on a weight laid out once (``prepack:=true``), the faster on this machine's
Zen 4 cores. Printed, not asserted:

    python bench/chunk_flops.py --full-size      # SmolVLA's 450M architecture
    python bench/chunk_flops.py --policy-path CKPT
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from lerobot.configs import PreTrainedConfig
from lerobot.policies.factory import make_pre_post_processors
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from lerobot.policies.utils import prepare_observation_for_inference
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from smolvla_ros.policy import packed_linear
from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint

HEIGHT, WIDTH = 480, 640
# Each stage is what runs inside one of LeRobot's methods (the prefix pass: the VLM's forward
# outside a flow step); pre- and post-processing do no matrix products.
STAGES = (("vision encoder + embed", "embed_prefix"),
          ("VLM prefix pass", "forward"),
          ("action expert, flow steps", "denoise_step"))


def lerobot_call(checkpoint: Path):
    """LeRobot's direct call on one fixed observation, and the policy it runs."""
    config = PreTrainedConfig.from_pretrained(checkpoint)
    policy = SmolVLAPolicy.from_pretrained(checkpoint, config=config)
    preprocess, postprocess = make_pre_post_processors(config, pretrained_path=str(checkpoint))
    rng = np.random.default_rng(0)
    observation = {"observation.state": rng.uniform(-60, 60, 6).astype(np.float32),
                   **{key: rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
                      for key in config.input_features if key.startswith("observation.images.")}}

    def call() -> None:
        frame = prepare_observation_for_inference(dict(observation), torch.device("cpu"),
                                                  task="pick up the cube", robot_type="so_follower")
        with torch.inference_mode():
            postprocess(policy.predict_action_chunk(preprocess(frame)))
    return call, policy


def cpu_attention_flops(query_shape, key_shape, value_shape, *_args, out_shape=None, **_kwargs) -> int:
    """torch counts fused attention on CUDA only; on the CPU it runs as this op (the vision
    encoder's SDPA), at the same two matrix products."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def counted_flops(policy: SmolVLAPolicy, call) -> dict[str, float]:
    """FLOPs of one call per stage: each stage's method counted while no other stage runs."""
    counts = {stage: 0.0 for stage, _ in STAGES}
    active: list[str] = []
    owners = {"embed_prefix": policy.model, "forward": policy.model.vlm_with_expert,
              "denoise_step": policy.model}

    def counted(stage, method):
        def wrapper(*args, **kwargs):
            if active:
                return method(*args, **kwargs)
            active.append(stage)
            counter = FlopCounterMode(display=False, custom_mapping={
                torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_attention_flops})
            try:
                with counter:
                    return method(*args, **kwargs)
            finally:
                counts[stage] += counter.get_total_flops()
                active.pop()
        return wrapper

    for stage, name in STAGES:
        setattr(owners[name], name, counted(stage, getattr(owners[name], name)))
    try:
        call()
    finally:
        for _, name in STAGES:
            del owners[name].__dict__[name]
    counts["all"] = sum(counts.values())
    return counts


def matmul_rate(dtype: torch.dtype, repeats: int, packed: bool = False) -> tuple[float, str]:
    """Best FLOP/s (for int8: multiply-adds as 2 operations) of torch's matrix product here,
    over the model's large shapes; int8 through ``torch._int_mm`` (int32 accumulation);
    ``packed``: oneDNN's product on a weight laid out once (``prepack:=true``'s)."""
    shapes = ((1024, 768, 3072), (1024, 3072, 768), (1024, 768, 768), (2048, 2048, 2048))
    best, where = 0.0, ""
    for m, k, n in shapes:
        if dtype == torch.int8:
            a, b = (torch.randint(-128, 128, shape, dtype=dtype) for shape in ((m, k), (k, n)))
            product = functools.partial(torch._int_mm, a, b)
        elif packed:  # the product prepack:=true installs, on a layer of this shape
            layer = torch.nn.Linear(k, n, bias=False, dtype=dtype).requires_grad_(False)
            packed_linear.prepack(layer)
            product = functools.partial(layer, torch.randn(m, k, dtype=dtype))
        else:
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            product = functools.partial(torch.mm, a, b)
        product()
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            product()
            seconds.append(time.perf_counter() - started)
        rate = 2 * m * k * n / min(seconds)
        if rate > best:
            best, where = rate, f"{m}x{k} @ {k}x{n}"
    return best, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--policy-path", type=Path)
    parser.add_argument("--rounds", type=int, default=3, help="timed LeRobot calls")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.policy_path or make_test_checkpoint(Path(folder) / "ckpt",
                                                              full_size=args.full_size)
        call, policy = lerobot_call(checkpoint)
        call()  # warm-up
        flops = counted_flops(policy, call)
        seconds = []
        for _ in range(args.rounds):
            started = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - started)
    lerobot_s = statistics.median(seconds)
    cameras = sum(key.startswith("observation.images.") for key in policy.config.input_features)
    print(f"LeRobot's float32 call, {cameras} cameras {WIDTH}x{HEIGHT}, "
          f"{policy.config.num_steps} flow steps, {torch.get_num_threads()} threads: "
          f"{lerobot_s:.3f} s per chunk (median of {args.rounds})")
    print("counted arithmetic per chunk (matrix products and attention):")
    for stage, _ in STAGES:
        print(f"  {stage:<28} {flops[stage] / 1e9:8.1f} GFLOP")
    print(f"  {'all':<28} {flops['all'] / 1e9:8.1f} GFLOP "
          f"(LeRobot's call runs at {flops['all'] / lerobot_s / 1e9:.0f} GFLOP/s)")
    products = [(torch.float32, False), (torch.float32, True), (torch.bfloat16, False),
                (torch.bfloat16, True), (torch.int8, False)]
    for dtype, packed in products:
        if packed and not packed_linear.available():
            continue
        rate, shape = matmul_rate(dtype, repeats=10, packed=packed)
        floor, name = flops["all"] / rate, str(dtype).removeprefix("torch.")
        print(f"{name}{' packed (oneDNN)' if packed else ''}: matrix product best "
              f"{rate / 1e9:.0f} GFLOP/s ({shape}); the counted arithmetic alone takes "
              f"{floor:.3f} s at that rate, so no mode multiplying {name} so beats "
              f"x{lerobot_s / floor:.2f} over LeRobot's call here at these steps")


if __name__ == "__main__":
    main()
