"""Barlow Twins' redundancy-reduction loss (Zbontar et al. 2021, arXiv:2103.03230)."""
from __future__ import annotations

import torch

from selfsup.losses.precision import float32_loss
from selfsup.nn.distributed import gather_with_grad


@float32_loss
def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """C_ij = sum_b z1n_bi z2n_bj / N, with each column standardised over the batch (Eq. 2).

    "C is the cross-correlation matrix computed between the outputs of the two
    identical networks along the batch dimension". Standardising is BN without
    affine parameters (biased variance, ``eps`` added), as the paper's code does;
    in a distributed run the batch is every rank's batch (gathered with gradients).

    Args:
        z1, z2: (N, D) embeddings of the two views.
    Returns:
        (D, D) cross-correlation matrix.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be (N, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    z1, z2 = gather_with_grad(z1).float(), gather_with_grad(z2).float()
    if z1.shape[0] < 2:
        raise ValueError("cross-correlation needs a batch of at least 2")

    def standardise(z: torch.Tensor) -> torch.Tensor:
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)

    return standardise(z1).T @ standardise(z2) / z1.shape[0]  # (D, D)


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 5e-3, eps: float = 1e-5) -> torch.Tensor:
    """sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2 (Eq. 1).

    "The invariance term ... tries to equate the diagonal elements of the
    cross-correlation matrix to 1 ... The redundancy reduction term tries to
    equate the off-diagonal elements ... to 0." ``lambd`` is the paper's
    lambda = 5e-3 ("trading off the importance of the first and second terms").
    """
    c = cross_correlation(z1, z2, eps)  # (D, D)
    on_diag = torch.diagonal(c)
    invariance = (1 - on_diag).pow(2).sum()
    redundancy = c.pow(2).sum() - on_diag.pow(2).sum()
    return invariance + lambd * redundancy
