"""BYOL's normalised MSE and SimSiam's negative cosine with its stop-gradient, against hand-computed values."""
import math

import pytest
import torch

from selfsup.losses import negative_cosine, normalized_mse

pytestmark = pytest.mark.usefixtures("one_thread")


def test_normalized_mse_is_two_minus_two_cosine():
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [2.0, 0.0], [1.0, 0.0]])
    z = torch.tensor([[0.0, 5.0], [1.0, 1.0], [3.0, 0.0], [-1.0, 0.0]])
    # per row: orthogonal 2, 45 degrees 2 - sqrt(2), aligned 0, opposite 4
    assert normalized_mse(p, z).item() == pytest.approx((2 + (2 - math.sqrt(2)) + 0 + 4) / 4, rel=1e-6)


def test_negative_cosine_values_and_stop_gradient():
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]], requires_grad=True)
    z = torch.tensor([[2.0, 0.0], [-1.0, 0.0]], requires_grad=True)
    loss = negative_cosine(p, z)
    assert loss.item() == pytest.approx((-1 + 1 / math.sqrt(2)) / 2, rel=1e-6)
    loss.backward()
    assert p.grad is not None and z.grad is None  # D(p, stopgrad(z))
    assert negative_cosine(p, z).item() == pytest.approx(normalized_mse(p, z).item() / 2 - 1, rel=1e-6)


@pytest.mark.parametrize("loss", [normalized_mse, negative_cosine])
def test_pair_losses_reject_mismatched_shapes(loss):
    with pytest.raises(ValueError, match="shape"):
        loss(torch.randn(3, 4), torch.randn(3, 5))
