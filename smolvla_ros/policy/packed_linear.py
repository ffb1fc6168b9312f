"""``prepack``: the policy's Linear layers multiply on weights laid out once, at load, for
oneDNN's CPU kernels.

A CPU nn.Linear in float32 calls a BLAS product that prepares its weight for the kernel within
every call. oneDNN's ``_linear_pointwise`` on a weight reordered once by
``_reorder_linear_weight`` (what torch.compile's freezing does on a CPU) skips that. Measured on
the 2-core dev machine (Zen 4), torch's Linear against the packed product, float32, in GFLOP/s:
a flow step's 50 tokens 50x720 @ 720x2048 147 against 221; the VLM prefix's 134x960 @ 960x2560
147 against 220; the vision encoder's 1024x768 @ 768x3072 192 against 220. bfloat16 gains
the same way (303 against 419 at the first shape). Still float32 (or bfloat16): the sums run in
another order, so the actions move by rounding only (bench/fast_modes.py measures how far).

The dense weight stays: LeRobot reads its dtype, and real-time chunking's guidance
differentiates through the flow step, which the packed product cannot (it has no autograd
kernel), so a product that needs a gradient takes the dense path. The packed copies take as much
memory again as the packed layers (1.5 GiB for the full-size model).
"""

from __future__ import annotations

import torch


class PackedProduct:
    """One Linear layer's forward on its packed weight (installed as the layer's ``forward``)."""

    def __init__(self, linear: torch.nn.Linear):
        self.linear = linear
        self.packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach(), None)
        self.bias = None if linear.bias is None else linear.bias.detach()  # shares its memory

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():  # RTC's guidance: the dense product
            return torch.nn.functional.linear(x, self.linear.weight, self.linear.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def prepack(module: torch.nn.Module, skip: tuple[torch.nn.Module, ...] = ()) -> int:
    """Install PackedProduct on every nn.Linear in ``module`` (CPU, float32 or bfloat16), except
    inside ``skip`` (modules another runtime runs). Returns how many."""
    left_out = {id(inner) for outer in skip for inner in outer.modules()}
    count = 0
    for layer in module.modules():
        if type(layer) is torch.nn.Linear and id(layer) not in left_out:
            layer.forward = PackedProduct(layer)
            count += 1
    return count


def available() -> bool:
    """Whether this torch has oneDNN's packed product (x86-64 and aarch64 builds do)."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
