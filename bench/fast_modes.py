"""Benchmark: each inference mode's speed and action deviation against LeRobot's float32 call.

The reference is LeRobot's own direct call in float32 (``SmolVLAPolicy.from_pretrained``, the
saved processors, ``prepare_observation_for_inference``; no code of this package), run on N
seeded observations (random images at camera size, a plausible SO-101 state, four
instructions), observation k with flow-matching noise seed k. Each mode then runs through
PolicyRuntime, as policy_node does, on the same observations and noise. Printed per mode: the
median seconds per chunk, the speed-up over the reference (medians, same process, same run),
and max |action - reference| in LeRobot units (degrees; gripper 0..100) per joint and
overall, next to the reference's own spread for scale. A mode is a comma list of speed-ups:

    float32 | bfloat16       dtype of the VLM + action expert
    tf32                     float32 matrix products on TF32 tensor cores (CUDA only)
    int8                     int8 Linear weights, activations quantised as they come (CPU):
                             torch's in float32; with openvino/ovexpert, their graphs' too
    steps=N                  N flow-matching steps instead of the checkpoint's (10)
    compile                  torch.compile of the vision encoder; with static or cudagraph,
                             of the prefix pass and flow step too
    prepack                  Linear weights laid out once for oneDNN's product (CPU)
    openvino                 the vision encoder on OpenVINO (CPU; vision_runtime openvino)
    ovexpert                 the flow step on OpenVINO (CPU; expert_runtime openvino)
    static                   the denoising loop on a static KV cache (exact: LeRobot's actions)
    cudagraph                that loop replayed as one CUDA graph, and each image's
                             embedding as another (CUDA only)

The test checkpoints have random weights: a trained checkpoint (--policy-path) may deviate
otherwise. Printed, not asserted:

    python bench/fast_modes.py                                   # tiny model, every mode
    python bench/fast_modes.py --full-size --observations 20     # SmolVLA's 450M architecture
    python bench/fast_modes.py --full-size --mode bfloat16,steps=5 --mode float32,int8
    python bench/fast_modes.py --policy-path CKPT --device cuda
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

from smolvla_ros.policy.runtime import PolicyLoadError, PolicyRuntime, PolicyRuntimeConfig
from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint
from smolvla_ros.units import SO101_JOINTS

TASKS = ("pick up the cube", "put the pen in the cup", "open the gripper", "fold the cloth")
DEFAULT_MODES = ("float32", "float32,static", "float32,cudagraph", "bfloat16",
                 "bfloat16,cudagraph", "float32,tf32,cudagraph", "float32,compile,cudagraph",
                 "bfloat16,compile,cudagraph", "float32,tf32,compile,cudagraph",
                 "float32,int8", "float32,compile", "float32,prepack", "float32,openvino",
                 "bfloat16,static,openvino", "bfloat16,static,prepack",
                 "float32,openvino,ovexpert", "bfloat16,openvino,ovexpert",
                 "float32,steps=5", "bfloat16,steps=5", "bfloat16,steps=3",
                 "bfloat16,compile,steps=5")


def observations(count: int, height: int, width: int, seed: int = 0) -> list[tuple]:
    """(images by camera index, state, task): random pictures, a plausible SO-101 state."""
    rng = np.random.default_rng(seed)
    return [([rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(3)],
             np.append(rng.uniform(-60.0, 60.0, 5), rng.uniform(0.0, 100.0)),
             TASKS[k % len(TASKS)]) for k in range(count)]


def noise(seed: int, shape, device: str):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)


def progress(label: str, k: int, total: int, seconds: float) -> None:
    if sys.stdout.isatty() or (k + 1) % max(1, total // 4) == 0 or k + 1 == total:
        end = "" if sys.stdout.isatty() and k + 1 < total else "\n"
        print(f"\r  {label}: {k + 1}/{total} chunks, {seconds:.2f} s the last", end=end, flush=True)


def timed(call, device: str) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    actions = call()
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return actions, time.perf_counter() - started


def lerobot_reference(checkpoint: str, device: str, obs: list) -> tuple[np.ndarray, float, tuple]:
    """LeRobot's float32 direct call on every observation: (chunks, median s per chunk,
    median s per stage)."""
    from lerobot.configs import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.utils import prepare_observation_for_inference

    config = PreTrainedConfig.from_pretrained(checkpoint)
    config.device = device
    policy = SmolVLAPolicy.from_pretrained(checkpoint, config=config)
    preprocess, postprocess = make_pre_post_processors(
        config, pretrained_path=checkpoint,
        preprocessor_overrides={"device_processor": {"device": device}},
        postprocessor_overrides={"device_processor": {"device": "cpu"}})
    keys = [key for key in config.input_features if key.startswith("observation.images.")]
    shape = (1, config.chunk_size, config.max_action_dim)

    def call(k: int, images, state, task) -> np.ndarray:
        observation = {"observation.state": state.astype(np.float32),
                       **{key: images[i] for i, key in enumerate(keys)}}
        frame = prepare_observation_for_inference(observation, torch.device(device), task=task,
                                                  robot_type="so_follower")
        actions = postprocess(policy.predict_action_chunk(preprocess(frame),
                                                          noise=noise(k, shape, device)))
        return actions[0, : config.n_action_steps].float().numpy().astype(np.float64)

    call(0, *obs[0])  # warm-up
    clock = StageClock(policy.model, device)  # the same timing wrappers as every mode's
    out, seconds, stages = [], [], []
    for k, (images, state, task) in enumerate(obs):
        actions, s = timed(lambda: call(k, images, state, task), device)
        out.append(actions)
        seconds.append(s)
        stages.append(clock.chunk(s))
        progress(f"LeRobot float32 ({device})", k, len(obs), s)
    del policy, clock
    return np.stack(out), statistics.median(seconds), clock_medians(stages)


def parse_mode(mode: str, checkpoint: str, device: str) -> PolicyRuntimeConfig:
    config = PolicyRuntimeConfig(checkpoint, device=device, dtype="float32")
    for part in (p.strip() for p in mode.split(",") if p.strip()):
        if part in ("float32", "bfloat16"):
            config.dtype = part
        elif part == "tf32":
            config.tf32 = True
        elif part == "int8":
            config.quantize = "int8"
        elif part == "compile":
            config.compile = True
        elif part == "prepack":
            config.prepack = True
        elif part == "openvino":
            config.vision_runtime = "openvino"
        elif part == "ovexpert":
            config.expert_runtime = "openvino"
        elif part == "static":
            config.static_cache = True
        elif part == "cudagraph":
            config.cuda_graph = True
        elif part.startswith("steps="):
            config.num_steps = int(part.split("=", 1)[1])
        else:
            raise SystemExit(f"unknown speed-up '{part}' in mode '{mode}'")
    return config


class StageClock:
    """Seconds per chunk in each part of SmolVLA's inference, from wrapping three methods of
    the loaded model (``VLAFlowMatching``; timing only, the calls go through unchanged):
    embed_prefix (the vision encoder on every camera, and the token embeddings), the VLM's
    prefix pass that fills the KV cache (sample_actions less the rest), the action expert's
    flow-matching steps (denoise_step, all of them), and what is left: LeRobot's pre- and
    post-processing. With the static cache (policy.static_expert) the steps are its loop, and
    its prefix pass and once-per-chunk projections count to the VLM prefix. With a CUDA graph
    one replay runs the prefix pass and the loop: the steps column holds both."""

    NAMES = ("vision+embed", "VLM prefix", "expert steps", "processing")

    def __init__(self, model, device: str):
        from smolvla_ros.policy.static_expert import StaticExpert

        self.device = device
        self.spent = {"embed_prefix": 0.0, "sample_actions": 0.0, "denoise_step": 0.0}
        steps_owner, steps_method = model, "denoise_step"
        static = getattr(model.sample_actions, "__self__", None)  # installed over LeRobot's
        if isinstance(static, StaticExpert):
            steps_owner, steps_method = static, "_replay" if static.cuda_graph else "_denoise"
        for name in ("embed_prefix", "sample_actions"):
            setattr(model, name, self._timed(getattr(model, name), name))
        setattr(steps_owner, steps_method,
                self._timed(getattr(steps_owner, steps_method), "denoise_step"))

    def _timed(self, method, name):
        def timed(*args, **kwargs):
            self._sync()
            started = time.perf_counter()
            result = method(*args, **kwargs)
            self._sync()
            self.spent[name] += time.perf_counter() - started
            return result
        return timed

    def _sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize(self.device)

    def chunk(self, total: float) -> tuple[float, ...]:
        """The stages of one chunk that took ``total`` seconds; resets for the next."""
        embed, sample, steps = (self.spent[n] for n in ("embed_prefix", "sample_actions", "denoise_step"))
        self.spent = dict.fromkeys(self.spent, 0.0)
        return embed, sample - embed - steps, steps, total - sample


def run_mode(config: PolicyRuntimeConfig, obs: list) -> tuple[str, np.ndarray, float, float, tuple] | None:
    """(runtime.mode, chunks, median s per chunk, load + warm-up s, median s per stage)
    through PolicyRuntime; None when the runtime refuses the mode on this device."""
    started = time.perf_counter()
    try:
        runtime = PolicyRuntime(config)
    except PolicyLoadError as error:  # e.g. int8 asked for on CUDA
        print(f"  skipped: {error}", flush=True)
        return None
    runtime.warm_up()
    ready = time.perf_counter() - started
    for note in runtime.load_notes:  # the load column differs by ~40 s whether graphs were cached
        print(f"  {note}", flush=True)
    clock = StageClock(runtime.policy.model, config.device)
    out, seconds, stages = [], [], []
    for k, (images, state, task) in enumerate(obs):
        named = {name: images[i] for i, name in enumerate(runtime.camera_names)}
        actions, s = timed(lambda: runtime.infer(named, state, task, noise=runtime.make_noise(k)),
                           config.device)
        out.append(actions)
        seconds.append(s)
        stages.append(clock.chunk(s))
        progress(runtime.mode, k, len(obs), s)
    mode = runtime.mode
    del runtime, clock
    gc.collect()
    if config.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return mode, np.stack(out), statistics.median(seconds), ready, clock_medians(stages)


def clock_medians(stages: list[tuple]) -> tuple:
    return tuple(statistics.median(row[j] for row in stages) for j in range(len(StageClock.NAMES)))


def report(device: str, reference: np.ndarray, reference_s: float, reference_stages: tuple,
           rows: list) -> None:
    spread = reference.max(axis=(0, 1)) - reference.min(axis=(0, 1))
    joints = SO101_JOINTS[: reference.shape[2]]
    print(f"\n{device}: {len(reference)} observations x {reference.shape[1]} actions; LeRobot float32 "
          f"direct call {reference_s:.3f} s/chunk (median)")
    print(f"  {'mode':<34} {'s/chunk':>8} {'speed-up':>8} {'max |d|':>8}   max |d| per joint "
          f"({', '.join(joints)})")
    for mode, chunks, seconds, _, _ in rows:
        delta = np.abs(chunks - reference)
        per_joint = " ".join(f"{delta[..., j].max():.3g}" for j in range(len(joints)))
        print(f"  {mode:<34} {seconds:8.3f} {reference_s / seconds:7.2f}x {delta.max():8.3g}   {per_joint}")
    print(f"  where each mode's time goes, s per chunk (median): "
          f"{', '.join(StageClock.NAMES)}; and load + warm-up")
    print(f"  {'LeRobot float32 (reference)':<34} " + " ".join(f"{v:8.3f}" for v in reference_stages))
    for mode, _, _, ready, stages in rows:
        print(f"  {mode:<34} " + " ".join(f"{v:8.3f}" for v in stages) + f"   {ready:6.1f} s")
    print(f"  reference spread per joint: {' '.join(f'{v:.3g}' for v in spread)}")
    print("  units: degrees for the joints, 0..100 for the gripper (LeRobot's, use_degrees)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true",
                        help="SmolVLA's 450M architecture, random weights (~1.8 GB; slow on a CPU)")
    parser.add_argument("--policy-path", default="", help="measure this checkpoint instead")
    parser.add_argument("--observations", type=int, default=20, help="how many (default 20)")
    parser.add_argument("--mode", action="append", default=[],
                        help=f"a comma list of speed-ups (repeatable); default: {' '.join(DEFAULT_MODES)}")
    parser.add_argument("--device", action="append", default=[],
                        help="cpu, cuda, cuda:1 (repeatable); default: cpu, and cuda if torch sees one")
    parser.add_argument("--image-size", default="480x640", help="camera images, HEIGHTxWIDTH")
    args = parser.parse_args()
    if args.observations < 1:
        parser.error("--observations must be at least 1")
    height, width = (int(v) for v in args.image_size.lower().split("x"))
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    obs = observations(args.observations, height, width)
    with tempfile.TemporaryDirectory() as folder:
        if args.policy_path:
            checkpoint, what = args.policy_path, args.policy_path
        else:
            print("writing the test checkpoint...", flush=True)
            checkpoint = str(make_test_checkpoint(Path(folder) / "ckpt", full_size=args.full_size))
            what = f"{'full-size (450M)' if args.full_size else 'tiny'} SmolVLA, random weights"
        print(f"{what}; {args.observations} observations, camera images {width}x{height}, "
              f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", flush=True)
        for device in devices:
            reference, reference_s, reference_stages = lerobot_reference(checkpoint, device, obs)
            modes = args.mode or [m for m in DEFAULT_MODES
                                  if (not {"int8", "prepack", "openvino", "ovexpert"} & set(m.split(","))
                                      or device == "cpu")
                                  and (not {"cudagraph", "tf32"} & set(m.split(","))
                                       or device.startswith("cuda"))]
            rows = [run_mode(parse_mode(mode, checkpoint, device), obs) for mode in modes]
            report(device, reference, reference_s, reference_stages, [r for r in rows if r])


if __name__ == "__main__":
    main()
