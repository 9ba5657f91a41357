"""InfoNCE-family losses (SimCLR's NT-Xent; MoCo, PIRL and NPID reuse the same core)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.nn.distributed import gather_with_grad, rank


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Normalized-temperature cross-entropy over 2N views (SimCLR, arXiv:2002.05709, Eq. 1).

    "Given a set {x_k} including a positive pair of examples x_i and x_j, the
    contrastive prediction task aims to identify x_j in {x_k}_{k != i} for a given x_i."
    Each of the 2N views is an anchor; its positive is the other view of the same
    image, the other 2N-2 views are negatives. In a distributed run the views of
    all ranks are negatives (gathered with gradients), as the paper's large batches need.

    Args:
        z1, z2: (B, D) projections of the two views of the same B images.
        temperature: tau in the paper.
    """
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)  # (2B, D) this rank's views
    z_all = F.normalize(torch.cat([gather_with_grad(z1), gather_with_grad(z2)]).float(), dim=1)  # (2BW, D)
    bw = z_all.shape[0] // 2
    logits = z @ z_all.T / temperature  # (2B, 2BW)
    local = torch.arange(b, device=z.device) + rank() * b  # positions of this rank's images in the gathered half
    self_cols = torch.cat([local, local + bw])  # each anchor's own column
    pos_cols = torch.cat([local + bw, local])  # the other view of the same image
    logits = logits.masked_fill(F.one_hot(self_cols, 2 * bw).bool(), float("-inf"))
    return F.cross_entropy(logits, pos_cols)
