"""Sinkhorn-Knopp codes (SwAV) against the paper's loops: equipartition, float32, no overflow."""
import math

import pytest
import torch

from selfsup.nn import sinkhorn_knopp

pytestmark = pytest.mark.usefixtures("one_thread")


def sinkhorn_reference(scores, epsilon, iterations):
    """The paper's Sinkhorn-Knopp as explicit loops over prototypes k and samples b, in float64."""
    b, k = scores.shape
    q = [[math.exp(float(scores[i, j]) / epsilon) for i in range(b)] for j in range(k)]  # q[k][b]
    total = sum(map(sum, q))
    q = [[v / total for v in row] for row in q]
    for _ in range(iterations):
        for j in range(k):  # every prototype holds 1/K of the mass
            s = sum(q[j])
            q[j] = [v / s / k for v in q[j]]
        for i in range(b):  # every sample holds 1/B of the mass
            s = sum(q[j][i] for j in range(k))
            for j in range(k):
                q[j][i] = q[j][i] / s / b
    return torch.tensor([[q[j][i] * b for j in range(k)] for i in range(b)], dtype=torch.float64)


def test_sinkhorn_matches_reference_loop():
    g = torch.Generator().manual_seed(0)
    scores = torch.nn.functional.normalize(torch.randn(6, 4, generator=g), dim=1)  # cosines, as SwAV's
    for eps, iters in ((0.05, 3), (0.5, 1), (0.1, 7)):
        codes = sinkhorn_knopp(scores, epsilon=eps, iterations=iters)
        torch.testing.assert_close(codes.double(), sinkhorn_reference(scores, eps, iters), rtol=1e-4, atol=1e-6)


def test_sinkhorn_codes_have_the_equipartition_marginals():
    g = torch.Generator().manual_seed(1)
    b, k = 32, 8
    scores = torch.nn.functional.normalize(torch.randn(b, k, generator=g), dim=1)
    scores[:, 0] += 0.5  # a prototype every sample prefers: equipartition must spread them anyway
    greedy = (scores / 0.05).softmax(dim=1).sum(dim=0)  # (K,) no equipartition: prototype 0 takes half the batch
    codes = sinkhorn_knopp(scores, epsilon=0.05, iterations=3)
    torch.testing.assert_close(codes.sum(dim=1), torch.ones(b))  # each code is a distribution
    # Three iterations do not converge at eps 0.05, but they undo most of the imbalance.
    spread = (codes.sum(dim=0) - b / k).abs().max()
    assert spread < 0.4 * b / k and spread < 0.2 * (greedy - b / k).abs().max()
    converged = sinkhorn_knopp(scores, epsilon=0.05, iterations=100)
    torch.testing.assert_close(converged.sum(dim=0), torch.full((k,), b / k), rtol=1e-3, atol=1e-4)


def test_sinkhorn_is_float32_without_gradient_and_does_not_overflow():
    scores = torch.tensor([[1.0, -1.0, 0.5], [0.9, 0.2, -0.3]], requires_grad=True)
    codes = sinkhorn_knopp(scores.bfloat16(), epsilon=0.01, iterations=3)  # exp(1 / 0.01) overflows float32 unshifted
    assert codes.dtype == torch.float32 and not codes.requires_grad and torch.isfinite(codes).all()
    with pytest.raises(ValueError, match="epsilon"):
        sinkhorn_knopp(scores, epsilon=0.0)
    with pytest.raises(ValueError, match="iterations"):
        sinkhorn_knopp(scores, iterations=0)
