"""Losses that must not lose precision run in float32 under bf16 autocast (losses.precision.float32_loss)."""
import pytest
import torch

from selfsup.losses import cross_correlation, nt_xent

pytestmark = pytest.mark.usefixtures("one_thread")


def test_losses_stay_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(64, 32, generator=g), torch.randn(64, 32, generator=g)
    exact = cross_correlation(z1, z2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = cross_correlation(z1, z2)
        bf16_matmul = (z1 - z1.mean(0)).T @ (z2 - z2.mean(0))  # what autocast does to a plain matmul
    assert under_autocast.dtype == torch.float32 and bf16_matmul.dtype == torch.bfloat16
    assert torch.allclose(under_autocast, exact, atol=1e-6)


def test_nt_xent_is_computed_in_float32_under_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(64, 32, generator=g), torch.randn(64, 32, generator=g)
    exact = nt_xent(z1, z2, temperature=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = nt_xent(z1, z2, temperature=0.1)
    assert torch.allclose(under_autocast, exact, atol=1e-6)
