"""Label-free health signals of an embedding, cheap enough to log every few steps.

Both detect collapse, the failure mode of joint-embedding methods where every
image maps to (nearly) the same vector or to a low-dimensional subspace, long
before a linear probe would be run.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_embeddings(z: torch.Tensor) -> torch.Tensor:
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"embeddings must be (B, D) with B >= 2, got shape {tuple(z.shape)}")
    return z.detach().float()


def embedding_std(z: torch.Tensor) -> float:
    """Mean over dimensions of the per-dimension std of L2-normalised embeddings (B, D).

    BYOL's and SimSiam's collapse monitor (Chen & He 2021, arXiv:2011.10566):
    collapsed outputs give 0, while embeddings spread over the unit sphere give
    about 1 / sqrt(D).
    """
    z = F.normalize(_check_embeddings(z), dim=1)  # (B, D)
    return z.std(dim=0).mean().item()


def rankme(z: torch.Tensor, eps: float = 1e-7) -> float:
    """Effective rank of embeddings (B, D): exp of the entropy of the normalised singular values.

    RankMe (Garrido et al. 2023, arXiv:2210.02885) tracks downstream accuracy
    without labels; it is 1 for collapsed (rank-one) embeddings and approaches
    min(B, D) for isotropic ones. All-zero embeddings give 0.
    """
    s = torch.linalg.svdvals(_check_embeddings(z).double())  # (min(B, D),)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total + eps
    return torch.exp(-(p * p.log()).sum()).item()
