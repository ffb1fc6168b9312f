"""Benchmark: SmolVLA's vision encoder in torch against exported runtimes (ONNX Runtime, OpenVINO).

The vision encoder (SigLIP ``vision_model`` + ``connector``, what LeRobot's ``embed_image``
runs once per camera) bounds a chunk on a CPU (bench/fast_modes.py), and it is the one part
of SmolVLA that exports as a plain graph: one image in, its tokens out. Each variant runs
the same images, round-robin with the others so machine noise hits all of them alike.
Printed per variant: median seconds per image, its ratio to torch float32 (medians, and the
median of same-round ratios), and max |Δ| of the image tokens against torch float32.

    torch fp32 | bf16 | int8     eager; bf16 = the module cast; int8 = dynamic int8 Linear layers
    OV fp32 | OV bf16            OpenVINO as policy_node's vision_runtime openvino runs it
                                 (torch.export, converted); bf16 = its inference precision hint
    OV i8w fp32 | OV i8w bf16    the same with quantize int8: int8 weights, the activations
                                 quantised as they come (no calibration)
    ORT fp32                     ONNX Runtime on the torch.onnx (dynamo) export
    OV int8                      OpenVINO on that export after NNCF post-training int8 (weights
                                 and activations, a few calibration images): --nncf-path only

OpenVINO comes with this package (requirements/base.in). ONNX Runtime and the ONNX exporter
do not; where missing they are reported and skipped:

    pip install --target /tmp/vision_rt onnxruntime onnx onnxscript
    PYTHONPATH=/tmp/vision_rt:$PYTHONPATH python bench/vision_runtimes.py --full-size

NNCF pulls in scikit-learn, whose import breaks transformers' in this venv; install it into
its own folder and pass it as --nncf-path: the int8 model is then made in a subprocess that
sees it. Printed, not asserted.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

THREADS = 2


def images(count: int, size: int, seed: int) -> list[np.ndarray]:
    """Pixel values as LeRobot feeds SigLIP: (1, 3, size, size) float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return [rng.random((1, 3, size, size), dtype=np.float32) * 2 - 1 for _ in range(count)]


def encoder(checkpoint: str):
    """The loaded checkpoint's vision encoder as one module (image -> tokens, as embed_image),
    its image size, and the SmolVLMWithExpertModel holding it (what OpenVINOVision takes)."""
    from lerobot.configs import PreTrainedConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

    from smolvla_ros.policy.openvino_vision import VisionEncoder

    config = PreTrainedConfig.from_pretrained(checkpoint)
    if not Path(config.vlm_model_name).exists() and (Path(checkpoint) / "vlm").is_dir():
        config.vlm_model_name = str(Path(checkpoint) / "vlm")  # a moved test checkpoint
    config.device = "cpu"
    owner = SmolVLAPolicy.from_pretrained(checkpoint, config=config).model.vlm_with_expert
    vlm = owner.get_vlm_model()
    size = config.resize_imgs_with_padding[0]
    return VisionEncoder(vlm.vision_model, vlm.connector).eval(), size, owner


def torch_variants(module) -> dict:
    import torch

    def run(model, dtype):
        def call(x):
            with torch.inference_mode():
                return model(torch.from_numpy(x).to(dtype)).float().numpy()
        return call

    with warnings.catch_warnings():  # deprecated for torchao (not a dependency); in torch 2.11
        warnings.simplefilter("ignore", DeprecationWarning)
        int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(module), {torch.nn.Linear},
                                                      dtype=torch.qint8)
    return {"torch fp32": run(module, torch.float32),
            "torch bf16": run(copy.deepcopy(module).to(torch.bfloat16), torch.bfloat16),
            "torch int8": run(int8, torch.float32)}


def openvino_variants(owner, size: int) -> dict:
    """OpenVINO in float32 and with its bf16 hint, each with float32 and int8 weights, made as
    policy_node's vision_runtime openvino (and quantize int8) makes it (torch.export of the
    modules, converted; no ONNX)."""
    import torch

    if importlib.util.find_spec("openvino") is None:
        print("  skipped OV fp32, OV bf16: openvino not installed")
        return {}
    from smolvla_ros.policy.openvino_cache import GraphCache
    from smolvla_ros.policy.openvino_vision import OpenVINOVision

    def run(vision):
        return lambda x: vision(torch.from_numpy(x)).float().numpy()

    no_cache = GraphCache(lambda: "", None)  # converted each time, as measured before the cache
    return {f"OV {weights}{short}": run(OpenVINOVision(owner, size, dtype, THREADS, no_cache, int8))
            for weights, int8 in (("", False), ("i8w ", True))
            for short, dtype in (("fp32", "float32"), ("bf16", "bfloat16"))}


def onnx_variants(module, example: np.ndarray, work: Path, nncf_path: str) -> dict:
    """ONNX Runtime on the module's ONNX export, and OpenVINO int8 (NNCF) made from that
    export; each skipped if what it needs is absent."""
    import torch

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime", "openvino")
               if importlib.util.find_spec(name) is None]
    if {"onnx", "onnxscript"} & set(missing):
        print(f"  skipped ORT fp32, OV int8: {', '.join(missing)} not installed (see --help)")
        return {}
    path = work / "vision.onnx"
    started = time.perf_counter()
    with torch.no_grad():
        torch.onnx.export(module, (torch.from_numpy(example),), str(path), dynamo=True,
                          input_names=["pixel_values"], output_names=["tokens"], external_data=True)
    print(f"  exported to ONNX (torch.onnx, dynamo) in {time.perf_counter() - started:.1f} s", flush=True)
    variants = {}
    if "onnxruntime" in missing:
        print("  skipped ORT fp32: onnxruntime not installed")
    else:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        variants["ORT fp32"] = lambda x: session.run(None, {"pixel_values": x})[0]
    if not nncf_path or "openvino" in missing:
        return variants
    import openvino

    from smolvla_ros.policy.openvino_vision import compile_for_latency

    int8 = work / "vision_int8.xml"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([nncf_path, *sys.path]))
    result = subprocess.run([sys.executable, __file__, "--make-int8", str(path), str(int8),
                             str(example.shape[-1])], env=env, capture_output=True, text=True)
    if result.returncode:
        print(f"  skipped OV int8: NNCF failed ({(result.stderr.strip().splitlines() or ['?'])[-1]})")
        return variants
    core = openvino.Core()
    request = compile_for_latency(core, core.read_model(str(int8)), "f32",
                                  THREADS).create_infer_request()
    variants["OV int8"] = lambda x: request.infer({0: x})[0].copy()
    return variants


def make_int8(onnx_path: str, out_path: str, size: str) -> None:
    """NNCF post-training int8 of the export, calibrated on 4 images (a subprocess: see --help)."""
    import nncf
    import openvino

    model = openvino.Core().read_model(onnx_path)
    quantized = nncf.quantize(model, nncf.Dataset(images(4, int(size), seed=1234)), subset_size=4,
                              model_type=nncf.ModelType.TRANSFORMER)
    openvino.save_model(quantized, out_path)


def round_robin(variants: dict, inputs: list, rounds: int, warm_up: int) -> dict[str, list[float]]:
    """Seconds per call of each variant: every round calls each once, on the round's input,
    so machine noise hits all of them alike; the warm-up rounds are not kept."""
    times = {name: [] for name in variants}
    print(f"  timing {len(variants)} variants round-robin: {warm_up} warm-up + {rounds} rounds, "
          f"{THREADS} threads", flush=True)
    for round_ in range(warm_up + rounds):
        for name, call in variants.items():
            started = time.perf_counter()
            call(inputs[round_ % len(inputs)])
            if round_ >= warm_up:
                times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-size", action="store_true", help="SmolVLA's 450M architecture")
    parser.add_argument("--policy-path", default="", help="this checkpoint's encoder instead")
    parser.add_argument("--rounds", type=int, default=12, help="timed rounds (default 12)")
    parser.add_argument("--nncf-path", default="", help="a folder holding nncf (pip --target)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        checkpoint = args.policy_path
        if not checkpoint:
            from smolvla_ros.policy.tiny_checkpoint import make_test_checkpoint

            checkpoint = str(make_test_checkpoint(work / "ckpt", full_size=args.full_size))
        module, size, owner = encoder(checkpoint)
        check = images(5, size, seed=0)
        variants = torch_variants(module)
        variants.update(openvino_variants(owner, size))
        variants.update(onnx_variants(module, check[0], work, args.nncf_path))
        reference = [variants["torch fp32"](x) for x in check]
        scale = max(np.abs(r).max() for r in reference)
        deltas = {name: max(np.abs(call(x) - r).max() for x, r in zip(check, reference))
                  for name, call in variants.items()}
        times = round_robin(variants, check, args.rounds, warm_up=2)
    base = times["torch fp32"]
    print(f"\nvision encoder, one {size}x{size} image, CPU ({os.cpu_count()} cores)")
    print(f"  {'variant':<12} {'s/image':>8} {'ratio':>6} {'paired':>6} {'max |d|':>9} {'relative':>9}")
    for name, seconds in times.items():
        paired = statistics.median(t / b for t, b in zip(seconds, base))
        print(f"  {name:<12} {statistics.median(seconds):8.3f} "
              f"{statistics.median(seconds) / statistics.median(base):6.2f} {paired:6.2f} "
              f"{deltas[name]:9.3g} {deltas[name] / scale:9.2e}")
    print(f"  ratio: time / torch fp32's (< 1 is faster); paired: the median of same-round ratios; "
          f"max |d| of the image tokens against torch fp32 (largest token value {scale:.3g})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--make-int8"]:
        make_int8(*sys.argv[2:5])
    else:
        main()
