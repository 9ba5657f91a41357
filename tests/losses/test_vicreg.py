"""The joint-embedding losses (MoCo, MoCo v3, BYOL, SimSiam, Barlow Twins, VICReg) against hand-computed values."""
import math

import pytest
import torch
import torch.nn.functional as F

from selfsup.losses import (barlow_twins_loss, covariance_term, cross_correlation, info_nce_in_batch,
                            info_nce_with_queue, invariance_term, negative_cosine, normalized_mse, variance_term,
                            vicreg_loss)

pytestmark = pytest.mark.usefixtures("one_thread")


def info_nce_queue_reference(q, k, queue, t):
    """MoCo's Eq. 1 as a loop: -log exp(q.k+/t) / (exp(q.k+/t) + sum_queue exp(q.k/t))."""
    q, k = F.normalize(q, dim=1).double(), F.normalize(k, dim=1).double()
    total = 0.0
    for i in range(len(q)):
        pos = math.exp(float(q[i] @ k[i]) / t)
        neg = sum(math.exp(float(q[i] @ key.double()) / t) for key in queue)
        total += -math.log(pos / (pos + neg))
    return total / len(q)


def test_info_nce_with_queue_matches_moco_equation():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    queue = F.normalize(torch.randn(7, 6, generator=g), dim=1)
    for t in (0.07, 0.2, 1.0):
        assert abs(info_nce_with_queue(q, k, queue, temperature=t).item() - info_nce_queue_reference(q, k, queue, t)) < 1e-4


def test_info_nce_with_queue_closed_form_for_orthogonal_negatives():
    # q = k = e0 and K queue entries orthogonal to it: loss = log(1 + K exp(-1/t))
    q = torch.tensor([[3.0, 0.0, 0.0]])  # norm is irrelevant: normalized inside
    queue = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    t = 0.2
    assert info_nce_with_queue(q, q, queue, temperature=t).item() == pytest.approx(math.log(1 + 3 * math.exp(-1 / t)), rel=1e-5)


def test_info_nce_with_queue_sends_no_gradient_to_keys_or_queue():
    q = torch.randn(3, 4, requires_grad=True)
    k = torch.randn(3, 4, requires_grad=True)
    queue = torch.randn(5, 4, requires_grad=True)
    info_nce_with_queue(q, k, queue).backward()
    assert q.grad is not None and k.grad is None and queue.grad is None


def test_info_nce_in_batch_matches_loop_and_closed_form():
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    qn, kn = F.normalize(q, dim=1).double(), F.normalize(k, dim=1).double()
    t = 0.5
    ref = -sum(math.log(math.exp(float(qn[i] @ kn[i]) / t) / sum(math.exp(float(qn[i] @ kn[j]) / t) for j in range(5)))
               for i in range(5)) / 5
    assert info_nce_in_batch(q, k, temperature=t).item() == pytest.approx(ref, abs=1e-5)
    eye = torch.eye(4)  # orthonormal queries equal to their keys: log(1 + (B - 1) exp(-1/t))
    assert info_nce_in_batch(eye, eye, temperature=t).item() == pytest.approx(math.log(1 + 3 * math.exp(-1 / t)), rel=1e-5)


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


def test_vicreg_invariance_term():
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


@pytest.mark.parametrize("loss", [normalized_mse, negative_cosine, info_nce_in_batch])
def test_pair_losses_reject_mismatched_shapes(loss):
    with pytest.raises(ValueError, match="shape"):
        loss(torch.randn(3, 4), torch.randn(3, 5))


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
    from selfsup.losses import nt_xent

    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(64, 32, generator=g), torch.randn(64, 32, generator=g)
    exact = nt_xent(z1, z2, temperature=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = nt_xent(z1, z2, temperature=0.1)
    assert torch.allclose(under_autocast, exact, atol=1e-6)
