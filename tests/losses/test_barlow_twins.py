"""Barlow Twins' cross-correlation loss against hand-computed values."""
import pytest
import torch

from selfsup.losses import barlow_twins_loss, cross_correlation

pytestmark = pytest.mark.usefixtures("one_thread")


def test_barlow_twins_identity_cross_correlation_gives_zero():
    # standardised, mutually uncorrelated columns: C = I, so both terms vanish
    z = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    assert torch.allclose(cross_correlation(z, z, eps=0.0), torch.eye(2))
    assert barlow_twins_loss(z, z, lambd=5e-3, eps=0.0).item() == pytest.approx(0.0, abs=1e-7)


def test_barlow_twins_hand_computed_2x2():
    # columns standardise to z1n = [[-1, 1], [1, -1]], z2n = [[-1, -1], [1, 1]]
    # C = z1n^T z2n / 2 = [[1, 1], [-1, -1]]: on-diagonal (1-1)^2 + (1+1)^2 = 4, off-diagonal 1 + 1 = 2
    z1 = torch.tensor([[1.0, 3.0], [3.0, 1.0]])
    z2 = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    assert torch.allclose(cross_correlation(z1, z2, eps=0.0), torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))
    assert barlow_twins_loss(z1, z2, lambd=0.5, eps=0.0).item() == pytest.approx(4 + 0.5 * 2, rel=1e-6)
    assert barlow_twins_loss(z1, z2).item() == pytest.approx(4 + 5e-3 * 2, rel=1e-4)  # default eps barely matters
