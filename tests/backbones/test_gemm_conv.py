"""Small-map 3x3 convolutions as matrix products: when the CPU's rule takes them, and that they match convolutions."""

import pytest
import torch
from torch import nn

from selfsup.backbones import gemm_conv
from selfsup.backbones.gemm_conv import columns

pytestmark = pytest.mark.usefixtures("one_thread")


def test_small_map_products_are_chosen_by_the_cpu():
    assert gemm_conv.AMX_RULE == {torch.bfloat16: (16, 64), torch.float32: (16, 256)}
    assert gemm_conv.NO_AMX_RULE == {torch.bfloat16: (4, 256)}
    assert gemm_conv.product_rule() == (gemm_conv.AMX_RULE if gemm_conv.has_amx() else gemm_conv.NO_AMX_RULE)


@pytest.mark.parametrize("side", [4, 2])
@pytest.mark.parametrize("how, cin", [("autocast", 64), ("bf16 tensors", 64), ("fp32", 256)])
def test_small_map_conv_as_a_product_matches_the_convolution(side, how, cin, monkeypatch):
    """3x3 convolutions of <= 4x4 CPU maps run as matrix products (AMX's rules, on any CPU); output and both
    gradients match."""
    torch.manual_seed(0)
    monkeypatch.setattr(gemm_conv, "PRODUCT_WHEN", gemm_conv.AMX_RULE)
    calls = []
    monkeypatch.setattr(gemm_conv, "columns", lambda x: calls.append(x.shape) or columns(x))
    conv = gemm_conv.Conv2d(cin, 40, 3, padding=1, bias=False)
    x = torch.randn(6, cin, side, side).to(memory_format=torch.channels_last)
    grad = torch.randn(6, 40, side, side)
    xd, wd = x.double().requires_grad_(), conv.weight.double().detach().requires_grad_()
    want = nn.functional.conv2d(xd, wd, padding=1)
    want.backward(grad.double())
    if how == "bf16 tensors":
        conv.bfloat16()
        x, grad = x.bfloat16(), grad.bfloat16()
    x.requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=how == "autocast"):
        out = conv(x)
    out.backward(grad.to(out.dtype))
    assert len(calls) == 2  # the forward's columns and the input gradient's: the product path ran
    assert out.shape == want.shape and out.dtype == (torch.float32 if how == "fp32" else torch.bfloat16)
    assert conv.weight.grad.dtype == conv.weight.dtype  # autocast: the fp32 master weight's gradient
    tol = 1e-5 if how == "fp32" else 2e-2
    for got, ref in ((out, want), (x.grad, xd.grad), (conv.weight.grad, wd.grad)):
        assert ((got.double() - ref).abs().max() / ref.abs().max()).item() < tol


def test_small_map_conv_leaves_other_cases_to_torch(monkeypatch):
    monkeypatch.setattr(gemm_conv, "PRODUCT_WHEN", gemm_conv.AMX_RULE)
    monkeypatch.setattr(gemm_conv, "columns", lambda x: pytest.fail("product path taken"))
    x = torch.randn(2, 64, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gemm_conv.Conv2d(64, 64, 3, padding=1, bias=False)(torch.randn(2, 64, 8, 8))  # 8x8: oneDNN is faster
        gemm_conv.Conv2d(32, 32, 3, padding=1, bias=False)(x[:, :32])  # few channels: oneDNN is faster
        gemm_conv.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)(x)
        gemm_conv.Conv2d(64, 64, 1, bias=False)(x)
    gemm_conv.Conv2d(64, 64, 3, padding=1, bias=False)(x)  # fp32 with fewer than 256 channels
    monkeypatch.setattr(gemm_conv, "PRODUCT_WHEN", gemm_conv.NO_AMX_RULE)
    gemm_conv.Conv2d(256, 256, 3, padding=1, bias=False)(torch.randn(2, 256, 4, 4))  # fp32: never
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gemm_conv.Conv2d(256, 256, 3, padding=1, bias=False)(torch.randn(2, 256, 4, 4))  # bf16 4x4: oneDNN
