"""NCE against a memory bank (NPID, PIRL) and its softmax form, against hand-computed values."""
import math

import pytest
import torch

from selfsup.losses.nce import estimate_log_z, memory_info_nce, nce_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_nce(pos, neg, n, log_z, tau):
    """The posterior h = P / (P + N/n), P = exp(s/tau) / Z, written out with floats."""
    total = 0.0
    for p, row in zip(pos, neg):
        h = lambda s: (math.exp(s / tau) / math.exp(log_z)) / (math.exp(s / tau) / math.exp(log_z) + len(row) / n)  # noqa: E731
        total += -math.log(h(p)) - sum(math.log(1.0 - h(s)) for s in row)
    return total / len(pos)


def test_nce_loss_at_even_odds_is_log2_per_term():
    # s = 0, Z = 1 and N/n = 1: every posterior is exactly 1/2, so each of the 1 + N terms costs log 2
    loss = nce_loss(torch.zeros(2), torch.zeros(2, 3), num_samples=3, log_z=0.0, temperature=0.5)
    assert loss.item() == pytest.approx(4 * math.log(2), rel=1e-6)


def test_nce_loss_matches_hand_computed_posteriors():
    pos = [0.9, -0.2]
    neg = [[0.1, -0.5, 0.3], [0.8, 0.0, -0.9]]
    log_z = math.log(7.0)
    got = nce_loss(torch.tensor(pos), torch.tensor(neg), num_samples=10, log_z=log_z, temperature=0.5)
    assert got.item() == pytest.approx(reference_nce(pos, neg, 10, log_z, 0.5), rel=1e-5)


def test_nce_loss_is_finite_at_the_paper_temperature_with_extreme_scores():
    pos, neg = torch.tensor([1.0, -1.0]), torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    loss = nce_loss(pos, neg, num_samples=1000, log_z=math.log(1000.0), temperature=0.07)
    assert torch.isfinite(loss)
    # -log h(pos=-1) ~ 1/0.07 + log Z - log(N/n) dominates: ~14.3 + 6.9 + 6.2
    assert loss.item() > 20


def test_nce_loss_falls_as_the_positive_gets_closer():
    neg = torch.tensor([[0.1, 0.2, -0.1]])
    losses = [nce_loss(torch.tensor([s]), neg, num_samples=50, log_z=math.log(50.0)).item() for s in (0.0, 0.5, 0.9)]
    assert losses[0] > losses[1] > losses[2]


def test_estimated_log_z_is_n_times_the_mean_exponential():
    pos, neg = torch.tensor([0.2, 0.4]), torch.tensor([[0.0, 0.2], [0.6, 0.4]])
    tau, n = 0.5, 100
    scores = [0.2, 0.0, 0.2, 0.4, 0.6, 0.4]
    expected = math.log(n * sum(math.exp(s / tau) for s in scores) / len(scores))
    assert estimate_log_z(pos, neg, n, tau).item() == pytest.approx(expected, rel=1e-6)


def test_memory_info_nce_is_the_softmax_over_positive_and_negatives():
    pos, neg, tau = [0.5, 0.1], [[0.2, -0.3], [0.4, 0.0]], 0.1
    got = memory_info_nce(torch.tensor(pos), torch.tensor(neg), temperature=tau)
    expected = sum(-math.log(math.exp(p / tau) / (math.exp(p / tau) + sum(math.exp(s / tau) for s in row)))
                   for p, row in zip(pos, neg)) / 2
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="pos must be"):
        nce_loss(torch.zeros(2, 1), torch.zeros(2, 3), num_samples=5, log_z=0.0)
    with pytest.raises(ValueError, match="pos must be"):
        memory_info_nce(torch.zeros(3), torch.zeros(2, 3))
