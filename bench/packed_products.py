"""Benchmark: a Linear layer's product at SmolVLA's shapes, as torch runs it and on a weight
packed once, by oneDNN (``prepack:=true``) and by MKL (what inductor's freezing packs for in
float32 on x86).

``compile:=true`` freezes the weights in bfloat16 on a CPU but not in float32, because there
inductor packs a float32 weight for MKL's product, not oneDNN's, and on the dev machine's
Zen 4 cores MKL's is no faster than torch's plain Linear: the rows below show by how much,
at a flow step's, the VLM prefix's and the vision encoder's largest products. Each is timed
as the best of ``--repeats`` calls on one weight, so it stays in cache; inside a chunk a
layer's weight comes from memory, and the rates are lower there. Printed, not asserted:

    python bench/packed_products.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import time

import torch

from smolvla_ros.policy import packed_linear

# (where, tokens, in, out): the full-size model's largest Linear in each stage
SHAPES = (("flow step, MLP up", 50, 720, 2048),
          ("flow step, MLP down", 50, 2048, 720),
          ("VLM prefix, MLP up", 134, 960, 2560),
          ("vision encoder, MLP up", 1024, 768, 3072),
          ("vision encoder, attention", 1024, 768, 768))


def products(tokens: int, inputs: int, outputs: int, dtype: torch.dtype) -> dict:
    """Each way of multiplying one layer's input by its weight, by name."""
    layer = torch.nn.Linear(inputs, outputs, dtype=dtype).requires_grad_(False)
    x = torch.randn(tokens, inputs, dtype=dtype)
    ways = {"torch Linear": lambda: layer(x)}
    if packed_linear.available():  # the product prepack:=true installs
        packed = packed_linear.PackedProduct(layer)
        ways["oneDNN packed"] = lambda: packed(x)
    if dtype == torch.float32 and torch._C.has_mkl:
        mkl = torch.ops.mkl._mkl_reorder_linear_weight(layer.weight, tokens)
        ways["MKL packed"] = lambda: torch.ops.mkl._mkl_linear(x, mkl, layer.weight, layer.bias,
                                                               tokens)
    return ways


def best_seconds(product, repeats: int) -> float:
    for _ in range(3):  # the first calls lay out buffers and start threads
        product()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        product()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"{torch.get_num_threads()} threads; GFLOP/s, and the ratio to torch's Linear")
    for dtype in (torch.float32, torch.bfloat16):
        for where, tokens, inputs, outputs in SHAPES:
            flop = 2 * tokens * inputs * outputs
            rates = {name: flop / best_seconds(product, args.repeats) / 1e9
                     for name, product in products(tokens, inputs, outputs, dtype).items()}
            baseline = rates["torch Linear"]
            cells = ", ".join(f"{name} {rate:.0f} (x{rate / baseline:.2f})"
                              for name, rate in rates.items())
            print(f"{str(dtype).removeprefix('torch.')} {where} {tokens}x{inputs} @ "
                  f"{inputs}x{outputs}: {cells}", flush=True)


if __name__ == "__main__":
    main()
