"""VICReg: variance, invariance and covariance terms (Bardes, Ponce & LeCun, ICLR 2022, arXiv:2105.04906).

Each term is its own function of tensors so each can be tested and logged;
``vicreg_loss`` weighs them with the paper's lambda = mu = 25, nu = 1. In a
distributed run the embeddings of all ranks are gathered (with gradients) first,
so variance and covariance are batch statistics over the global batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.precision import float32_loss
from selfsup.nn.distributed import gather_with_grad


@float32_loss
def invariance_term(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """s(Z, Z') = mean squared distance between the paired embeddings (Eq. 5): MSE over all N*D entries."""
    return F.mse_loss(z1.float(), z2.float())


@float32_loss
def variance_term(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """v(Z) = 1/d sum_j max(0, gamma - S(z^j, eps)), S = sqrt(Var(z^j) + eps) (Eqs. 1-2).

    "a hinge function on the standard deviation of the embeddings along the batch
    dimension" keeps every dimension's std above gamma; the unbiased variance, as
    the paper's code.
    """
    std = torch.sqrt(z.float().var(dim=0) + eps)  # (D,)
    return F.relu(gamma - std).mean()


@float32_loss
def covariance_term(z: torch.Tensor) -> torch.Tensor:
    """c(Z) = 1/d sum_{i != j} C(Z)_ij^2, C the (unbiased) covariance matrix of the columns (Eqs. 3-4)."""
    n, d = z.shape
    z = z.float() - z.float().mean(dim=0)
    cov = z.T @ z / (n - 1)  # (D, D)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
) -> tuple[torch.Tensor, dict[str, float]]:
    """lambda s(Z, Z') + mu [v(Z) + v(Z')] / 2 + nu [c(Z) + c(Z')] (Eq. 6), and the three terms for logging.

    The variance terms of the two branches are averaged, not summed, as in the
    paper's released code that produced its results with lambda = mu = 25, nu = 1
    (Eq. 6 as printed sums them; the halving is equivalent to mu = 12.5 there).

    Args:
        z1, z2: (N, D) expander outputs of the two views.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be (N, D), got {tuple(z1.shape)} and {tuple(z2.shape)}")
    z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
    if z1.shape[0] < 2:
        raise ValueError("VICReg needs a batch of at least 2 (variance and covariance are batch statistics)")
    inv = invariance_term(z1, z2)
    var = (variance_term(z1, gamma, eps) + variance_term(z2, gamma, eps)) / 2
    cov = covariance_term(z1) + covariance_term(z2)
    loss = sim_coeff * inv + std_coeff * var + cov_coeff * cov
    return loss, {"invariance": inv.item(), "variance": var.item(), "covariance": cov.item()}
