"""VICReg's invariance, variance and covariance terms against hand-computed values."""
import math

import pytest
import torch

from selfsup.losses import covariance_term, invariance_term, variance_term, vicreg_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def test_vicreg_invariance_term_is_the_mean_squared_difference():
    z1 = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    z2 = torch.tensor([[1.0, 0.0], [1.0, 3.0]])
    assert invariance_term(z1, z2).item() == pytest.approx((1 + 0 + 0 + 4) / 4)


def test_vicreg_variance_term_hinges_on_std():
    z = torch.tensor([[0.0, 0.0], [2.0, 0.5]])  # unbiased variances 2 and 0.125
    expected = (0.0 + (1 - math.sqrt(0.125 + 1e-4))) / 2  # std above gamma = 1 costs nothing
    assert variance_term(z, gamma=1.0, eps=1e-4).item() == pytest.approx(expected, rel=1e-6)
    assert variance_term(torch.zeros(4, 3), gamma=1.0, eps=1e-4).item() == pytest.approx(1 - 1e-2, rel=1e-6)  # collapse


def test_vicreg_covariance_term_penalises_off_diagonal_only():
    z = torch.tensor([[1.0, 2.0], [3.0, 0.0], [5.0, 4.0]])  # centred: [-2, 0, 2] and [0, -2, 2]; cov_01 = 4/2 = 2
    assert covariance_term(z).item() == pytest.approx(2 * 2**2 / 2)  # two off-diagonal entries, divided by d = 2
    independent = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    assert covariance_term(independent * 7).item() == pytest.approx(0.0, abs=1e-6)  # variances are not penalised


def test_vicreg_loss_weighs_the_three_terms():
    g = torch.Generator().manual_seed(2)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    loss, terms = vicreg_loss(z1, z2, sim_coeff=2.0, std_coeff=3.0, cov_coeff=5.0)
    inv = invariance_term(z1, z2).item()
    var = (variance_term(z1).item() + variance_term(z2).item()) / 2
    cov = covariance_term(z1).item() + covariance_term(z2).item()
    assert terms == pytest.approx({"invariance": inv, "variance": var, "covariance": cov})
    assert loss.item() == pytest.approx(2 * inv + 3 * var + 5 * cov, rel=1e-5)
