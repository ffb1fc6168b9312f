"""Benchmark: SmolVLA's prefix pass and flow-matching steps in torch against OpenVINO.

After the vision encoder (bench/vision_runtimes.py), the rest of a chunk on a CPU is the
VLM's pass over the prefix and the action expert's denoising steps. The static cache
(smolvla_ros.policy.static_expert, ``static_cache:=true``) runs both as one function of four
tensors, with no host work: the prefix embeddings and their two masks, and the noise, in; the
chunk in model space out. So it exports as a plain graph too. Each variant runs the same
prefixes (two instructions of different lengths: the prefix length is a dynamic dimension),
round-robin so machine noise hits all of them alike. The prefixes are made once, in float32
(vision encoder included): the deviations are the prefix pass's and the steps' alone. Printed per variant: median seconds per
pass, its ratio to torch float32, and max |Δ| of the actions in LeRobot units (degrees;
gripper 0-100) against torch float32; and for OpenVINO the seconds a node would spend at
load: torch.export, conversion, compilation.

    torch fp32 | bf16       the static cache's function, eager; bf16 = after dtype:=bfloat16's
                            cast of the VLM and expert
    OV fp32 | OV bf16       the same function through torch.export, converted by OpenVINO;
                            bf16 = its inference precision hint (f32 where the CPU has none)
    OV ... 1-step           the prefix pass in torch, and one step's graph on OpenVINO, run
                            once per step: a tenth of the graph to export and convert

    python bench/expert_runtimes.py                 # tiny test checkpoint
    python bench/expert_runtimes.py --full-size     # SmolVLA's 450M architecture
    python bench/expert_runtimes.py --full-size --no-whole-graph   # without the 6-minute graph

Printed, not asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from smolvla_ros.policy.openvino_cache import GraphCache
from smolvla_ros.policy.openvino_expert import OpenVINOSteps, export_program
from smolvla_ros.policy.openvino_vision import PRECISION_HINTS, compile_for_latency
from smolvla_ros.policy.runtime import PolicyRuntime, PolicyRuntimeConfig
from smolvla_ros.policy.static_expert import StaticExpert
from vision_runtimes import THREADS, round_robin  # bench/, beside this script

TASKS = ("pick up the cube", "put the red block in the blue box, then open the gripper")
NO_CACHE = GraphCache(lambda: "", None)  # converted each time: the making time is what is measured


def prefixes(runtime: PolicyRuntime, image_shape: tuple[int, int]) -> list[tuple[torch.Tensor, ...]]:
    """The static cache's inputs for each of TASKS, as a runtime's inference makes them."""
    static = runtime._static_expert
    run, taken = static._run, []
    static._run = lambda *inputs: taken.append(inputs) or run(*inputs)
    rng = np.random.default_rng(0)
    for seed, task in enumerate(TASKS):
        images = {name: rng.integers(0, 256, (*image_shape, 3), dtype=np.uint8)
                  for name in runtime.camera_names}
        runtime.infer(images, rng.normal(size=runtime.state_dim) * 20, task,
                      noise=runtime.make_noise(seed))
    static._run = run
    return taken


class Pass(torch.nn.Module):
    """The static cache's prefix pass and steps as an exportable module."""

    def __init__(self, static: StaticExpert):
        super().__init__()
        self.static = static

    def forward(self, embeddings, pad_masks, att_masks, noise):
        return self.static._run(embeddings, pad_masks, att_masks, noise)


def openvino_variants(static: StaticExpert, example: tuple[torch.Tensor, ...]) -> tuple[dict, dict]:
    """{name: call} for OV fp32 and bf16, and {stage: seconds} of making them."""
    import openvino

    spent = {}
    started = time.perf_counter()
    length = torch.export.Dim("prefix", min=2, max=1024)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = export_program(Pass(static), example,
                                 ({1: length}, {1: length}, {1: length}, None))
        spent["torch.export"] = time.perf_counter() - started
        started = time.perf_counter()
        graph = openvino.convert_model(program)
    spent["convert"] = time.perf_counter() - started
    variants = {}
    for name, dtype in (("OV fp32", "float32"), ("OV bf16", "bfloat16")):
        started = time.perf_counter()
        request = compile_for_latency(openvino.Core(), graph, PRECISION_HINTS[dtype],
                                      THREADS).create_infer_request()
        spent[f"compile {name}"] = time.perf_counter() - started
        variants[name] = lambda inputs, r=request: torch.from_numpy(
            r.infer({k: value.numpy() for k, value in enumerate(inputs)})[0].copy())
    return variants, spent


def openvino_step_variants(static: StaticExpert, cast: StaticExpert) -> tuple[dict, dict]:
    """{name: call} for the prefix pass in torch and each step on OpenVINO as
    ``expert_runtime:=openvino`` runs them (one step's graph, run num_steps times), fp32 and
    bf16; and the seconds each took to make. The bf16 variant's prefix pass is ``cast``'s (the
    bfloat16 model, as ``torch bf16`` runs it)."""
    variants, spent = {}, {}
    for name, dtype, expert in (("OV fp32 1-step", "float32", static),
                                ("OV bf16 1-step", "bfloat16", cast)):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            step = OpenVINOSteps(static.model, dtype, THREADS, NO_CACHE)  # from the float32 modules
        spent[name] = time.perf_counter() - started
        runner = StaticExpert(expert.model)  # the torch variants keep their own steps
        step.install(runner)
        variants[name] = lambda inputs, runner=runner: runner._run(*inputs)
    return variants, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true", help="SmolVLA's 450M architecture")
    parser.add_argument("--policy-path", default="", help="this checkpoint instead")
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds (default 6)")
    parser.add_argument("--no-whole-graph", action="store_true",
                        help="leave out OV fp32/bf16, whose graph holds all steps (minutes to "
                             "convert at full size)")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.policy_path
        if not checkpoint:
            from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint

            checkpoint = str(make_test_checkpoint(Path(folder) / "ckpt", full_size=args.full_size))
        runtime = PolicyRuntime(PolicyRuntimeConfig(checkpoint, device="cpu", static_cache=True))
        inputs = prefixes(runtime, (480, 640))
        static = runtime._static_expert
        cast = PolicyRuntime(PolicyRuntimeConfig(checkpoint, device="cpu", dtype="bfloat16",
                                                 static_cache=True))
        variants = {"torch fp32": lambda x: static._run(*x),
                    "torch bf16": lambda x, s=cast._static_expert: s._run(*x)}
        print(f"  exporting and converting (prefix lengths {[x[0].shape[1] for x in inputs]})",
              flush=True)
        spent = {}
        if not args.no_whole_graph:
            made, spent = openvino_variants(static, inputs[0])
            variants.update(made)
        made, spent_step = openvino_step_variants(static, cast._static_expert)
        variants.update(made)

        def degrees(actions: torch.Tensor) -> np.ndarray:
            return runtime.postprocessor(actions[:, :, : runtime.action_dim])[0].float().numpy()

        with torch.no_grad():
            reference = [degrees(variants["torch fp32"](x)) for x in inputs]
            deltas = {name: max(np.abs(degrees(call(x)) - r).max() for x, r in zip(inputs, reference))
                      for name, call in variants.items()}
            times = round_robin(variants, inputs, args.rounds, warm_up=1)
    steps = runtime.policy.config.num_steps
    base = statistics.median(times["torch fp32"])
    print(f"\nprefix pass + {steps} flow steps, CPU ({os.cpu_count()} cores)")
    print(f"  {'variant':<15} {'s/pass':>8} {'ratio':>6} {'max |d|':>9}")
    for name, seconds in times.items():
        print(f"  {name:<15} {statistics.median(seconds):8.3f} {statistics.median(seconds) / base:6.2f} "
              f"{deltas[name]:9.3g}")
    print("  ratio: time / torch fp32's (< 1 is faster); max |d|: actions against torch fp32, in "
          "LeRobot units")
    if spent:
        print("  OpenVINO, made once at load: "
              + ", ".join(f"{stage} {s:.1f} s" for stage, s in spent.items()))
    print("  OpenVINO 1-step (expert_runtime openvino: export, convert, compile), made once at "
          "load: " + ", ".join(f"{name} {s:.1f} s" for name, s in spent_step.items()))


if __name__ == "__main__":
    main()
