"""``quantize:=int8`` with the OpenVINO runtimes: their graphs' Linear weights become int8 and
OpenVINO multiplies them in int8 (activations quantised as they come, no calibration), in
float32 and in bfloat16 policies; SmolVLA's own action projections stay float32; a cached
graph reads back int8; the actions stay as close to LeRobot's as torch's own int8 keeps them,
on the tiny, smolvla_base-shaped and fine-tuned checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_openvino_cache import cache, folders, load  # noqa: F401 (cache: a fixture)
from test_policy_runtime import beside_lerobots, observation, openvino_has_bf16

from smolvla_ros.policy.openvino_expert import float32_projections
from smolvla_ros.policy.openvino_vision import (INT8_GROUP_SIZE, compile_for_latency,
                                                exported_graph, int8_weights)
from smolvla_ros.policy.runtime import PolicyRuntime, PolicyRuntimeConfig


class TwoLinears(torch.nn.Module):
    """Two Linear layers and a product of activations by activations, as in attention."""

    def __init__(self):
        super().__init__()
        self.up, self.down = torch.nn.Linear(64, 256), torch.nn.Linear(256, 64)

    def forward(self, x):
        hidden = self.down(torch.nn.functional.gelu(self.up(x)))
        return hidden @ hidden.transpose(-1, -2)


def runtime_products(compiled) -> list[tuple[str, str]]:
    """(layer type, weight element type) of each product OpenVINO's CPU plugin runs."""
    products = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        kind = op.get_rt_info()["layerType"].astype(str)
        if kind in ("FullyConnected", "MatMul"):
            products.append((kind, op.input(1).get_element_type().get_type_name()))
    return products


def test_int8_weights_are_what_openvino_multiplies_and_only_the_weights():
    import openvino

    torch.manual_seed(0)
    module, example = TwoLinears().eval(), torch.randn(1, 32, 64)
    with torch.no_grad():
        exact = module(example).numpy()
    graph = exported_graph(module, example)
    assert int8_weights(graph, keep=[]) == 2  # up and down; not hidden @ hidden.T
    compiled = compile_for_latency(openvino.Core(), graph, "f32", 2, INT8_GROUP_SIZE)
    assert sorted(runtime_products(compiled)) == [("FullyConnected", "i8"),
                                                  ("FullyConnected", "i8"), ("MatMul", "f32")]
    out = compiled.create_infer_request().infer({0: example.numpy()})[0]
    error = float(np.abs(out - exact).max())
    assert 0 < error < 0.02 * float(np.abs(exact).max())  # int8 rounding, not float32's


def test_weights_kept_stay_float32_in_either_orientation():
    torch.manual_seed(0)
    module, example = TwoLinears().eval(), torch.randn(1, 32, 64)
    graph = exported_graph(module, example)
    assert int8_weights(graph, keep=[module.down.weight.T]) == 1
    float_weights = [node.input_value(1).get_node().get_data() for node in graph.get_ordered_ops()
                     if node.get_type_name() == "MatMul"
                     and node.input_value(1).get_node().get_type_name() == "Constant"]
    assert len(float_weights) == 1  # up's weight is int8 now, scaled back by a Multiply
    down = module.down.weight.detach().numpy()
    assert np.array_equal(float_weights[0], down) or np.array_equal(float_weights[0], down.T)


def deviation(fast, exact) -> float:
    images, state = observation()
    return float(np.abs(fast.infer(images, state, "pick up the cube", noise=fast.make_noise(7))
                        - exact).max())


@pytest.fixture(scope="module")
def exact_and_torch_int8(tiny_checkpoint):
    """LeRobot's float32 actions (our default path: LeRobot's bit for bit) for
    ``observation()``, and how far torch's dynamic int8 moves them."""
    images, state = observation()

    def chunk(**changes):
        policy = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu", **changes))
        return policy.infer(images, state, "pick up the cube", noise=policy.make_noise(7))
    exact = chunk()
    return exact, float(np.abs(chunk(quantize="int8") - exact).max())


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_int8_openvino_graphs_keep_actions_as_close_as_torchs_int8(tiny_checkpoint,
                                                                     exact_and_torch_int8, dtype):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

    exact, torch_int8 = exact_and_torch_int8
    fast = PolicyRuntime(PolicyRuntimeConfig(str(tiny_checkpoint), device="cpu", dtype=dtype,
                                             quantize="int8", vision_runtime="openvino",
                                             expert_runtime="openvino"))
    precision = "" if dtype == "float32" or openvino_has_bf16() else \
        " (f32: this CPU has no bfloat16)"
    int8 = f" (int8 weights){precision}"
    assert fast.mode == (f"{dtype}, {'int8 linear, ' if dtype == 'float32' else ''}10 steps, "
                         f"OpenVINO vision{int8}, OpenVINO expert{int8}")
    torch_quantized = any(isinstance(m, DynamicInt8Linear) for m in fast.policy.model.modules())
    assert torch_quantized == (dtype == "float32")  # torch's dynamic int8 is float32's only
    for projection in float32_projections(fast.policy.model):
        assert projection.dtype == torch.float32
    ours = deviation(fast, exact)
    if dtype == "float32":
        assert 0 < ours <= torch_int8  # measured: 0.03 against torch's 0.07
    else:  # bfloat16's rounding on top: measured 0.26 against bfloat16 alone's 0.16
        bf16 = deviation(PolicyRuntime(PolicyRuntimeConfig(
            str(tiny_checkpoint), device="cpu", dtype="bfloat16")), exact)
        assert 0 < ours <= 2 * (bf16 + torch_int8)


@pytest.mark.parametrize("fixture, cameras_left_out, num_steps, dtype", [
    ("base_like_checkpoint", ("camera3",), 4, "float32"),  # smolvla_base's features
    ("finetuned_checkpoint", (), 0, "bfloat16"),  # its saved rename map, the fastest dtype
])
def test_int8_openvino_graphs_on_checkpoints_users_bring(request, fixture, cameras_left_out,
                                                          num_steps, dtype):
    """The same bound on smolvla_base-shaped checkpoints (three 256x256 cameras, one left
    out; a fine-tune's rename map), each chunk against LeRobot's float32 call on the same
    input, beside torch's own int8 (and bfloat16) on it."""
    checkpoint = request.getfixturevalue(fixture)

    def policy(**changes):
        return PolicyRuntime(PolicyRuntimeConfig(str(checkpoint), device="cpu",
                                                 num_steps=num_steps, **changes))
    fast = policy(dtype=dtype, quantize="int8", vision_runtime="openvino",
                  expert_runtime="openvino")
    others = [policy(quantize="int8")] + ([policy(dtype="bfloat16")] if dtype == "bfloat16" else [])
    chunks = zip(*(beside_lerobots(p, checkpoint, cameras_left_out, num_steps)
                   for p in (fast, *others)))
    for (ours, exact), *theirs in chunks:
        torchs = sum(float(np.abs(other - exact).max()) for other, _ in theirs)
        # Measured: float32 0.055, 0.047 against torch's int8 0.063, 0.071; bfloat16 0.30,
        # 0.18 against torch's int8 + bfloat16 0.17, 0.17 (OpenVINO's bf16 rounds the vision
        # encoder's and the step's activations as well).
        assert 0 < float(np.abs(ours - exact).max()) <= (1 if dtype == "float32" else 3) * torchs


def test_int8_graphs_are_cached_apart_and_read_back_int8(tiny_checkpoint, cache):  # noqa: F811
    float_graphs = folders(load(tiny_checkpoint), "converted and saved to")
    first = load(tiny_checkpoint, quantize="int8")
    int8_graphs = folders(first, "converted and saved to")
    assert not set(float_graphs) & set(int8_graphs)
    for name in int8_graphs:
        assert 'element_type="i8"' in (cache / name / "model.xml").read_text()
    again = load(tiny_checkpoint, quantize="int8")
    assert folders(again, "read from") == int8_graphs
    images, state = observation(1)
    np.testing.assert_allclose(
        again.infer(images, state, "pick up the cube", noise=again.make_noise(3)),
        first.infer(images, state, "pick up the cube", noise=first.make_noise(3)),
        rtol=0, atol=1e-3)  # float rounding (measured: 1.1e-4), not int8's (0.03)
