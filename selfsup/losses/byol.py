"""Cosine-based regression losses of the non-contrastive methods: BYOL's normalized MSE, SimSiam's negative cosine."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.precision import float32_loss


@float32_loss
def normalized_mse(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's loss for one direction (arXiv:2006.07733, Eq. 2), averaged over the batch.

    "we define the following mean squared error between the normalized predictions
    and target projections, L = ||q_bar - z_bar'||^2 = 2 - 2 <q, z'> / (||q|| ||z'||)".
    The target ``z`` gets no gradient ("stop-gradient ... on the target").

    Args:
        p: (B, D) online predictions q_theta(z_theta).
        z: (B, D) target projections z'_xi.
    """
    if p.shape != z.shape:
        raise ValueError(f"p and z must have the same shape, got {tuple(p.shape)} and {tuple(z.shape)}")
    cos = F.cosine_similarity(p.float(), z.detach().float(), dim=1)  # (B,)
    return (2 - 2 * cos).mean()


@float32_loss
def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, z) with stop-gradient on z (arXiv:2011.10566, Eq. 1 and Alg. 1), averaged over the batch.

    "D(p1, z2) = - p1/||p1||_2 . z2/||z2||_2" and "D(p1, stopgrad(z2))": ``z`` is
    treated as a constant. Equal to normalized_mse(p, z) / 2 - 1.
    """
    if p.shape != z.shape:
        raise ValueError(f"p and z must have the same shape, got {tuple(p.shape)} and {tuple(z.shape)}")
    return -F.cosine_similarity(p.float(), z.detach().float(), dim=1).mean()
