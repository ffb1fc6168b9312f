"""prepack's product (smolvla_ros.policy.packed_linear): torch's Linear up to rounding, in
float32 and bfloat16, whatever the input's shape, with a gradient where one is asked for."""

from __future__ import annotations

import pytest
import torch

from smolvla_ros.policy.packed_linear import PackedProduct, available, prepack

pytestmark = pytest.mark.skipif(not available(), reason="this torch has no oneDNN")

TOLERANCE = {torch.float32: {"rtol": 1e-5, "atol": 1e-5},
             torch.bfloat16: {"rtol": 1.6e-2, "atol": 1e-2}}  # one bfloat16 rounding step


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7, 96), (1, 50, 96), (2, 3, 5, 96), "transposed"])
def test_the_packed_product_is_torchs_up_to_rounding(dtype, bias, shape):
    torch.manual_seed(0)
    layer = torch.nn.Linear(96, 40, bias=bias).to(dtype)
    x = torch.randn(1, 96, 50, dtype=dtype).transpose(1, 2) if shape == "transposed" \
        else torch.randn(shape, dtype=dtype)  # transposed: a strided view, as attention makes
    with torch.inference_mode():
        expected = layer(x)
    assert prepack(layer) == 1 and isinstance(layer.forward, PackedProduct)
    with torch.inference_mode():
        got = layer(x)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, **TOLERANCE[dtype])


def test_a_product_that_needs_a_gradient_gets_torchs():
    """Real-time chunking's guidance differentiates through the flow step."""
    torch.manual_seed(0)
    dense, packed = torch.nn.Linear(32, 16), torch.nn.Linear(32, 16)
    packed.load_state_dict(dense.state_dict())
    prepack(packed)
    x = torch.randn(4, 32)
    gradients = []
    for layer in (dense, packed):
        leaf = x.clone().requires_grad_(True)
        (layer(leaf) ** 2).sum().backward()
        gradients.append(leaf.grad)
    torch.testing.assert_close(gradients[1], gradients[0], rtol=0, atol=0)
    with torch.no_grad():  # no gradient asked for: the packed product, whatever requires_grad
        assert packed(x.clone().requires_grad_(True)).grad_fn is None


def test_prepack_leaves_what_it_is_told_to_and_the_weights_as_they_were():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Sequential(torch.nn.Linear(8, 8)),
                                torch.nn.MultiheadAttention(8, 2))  # holds a Linear subclass
    state = {name: value.clone() for name, value in model.state_dict().items()}
    assert prepack(model, skip=(model[1],)) == 1
    assert isinstance(model[0].forward, PackedProduct)
    assert not isinstance(model[1][0].forward, PackedProduct)
    assert not isinstance(model[2].out_proj.forward, PackedProduct)  # read by MHA's own code
    after = model.state_dict()
    assert after.keys() == state.keys()
    for name, value in state.items():
        torch.testing.assert_close(after[name], value, rtol=0, atol=0)
