"""InfoNCE-family losses (SimCLR's NT-Xent; MoCo, PIRL and NPID reuse the same core)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.losses.precision import float32_loss
from selfsup.nn.distributed import (
    gather,  # no-grad gather for keys
    gather_with_grad,
    rank,
)


@float32_loss
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


@float32_loss
def info_nce_with_queue(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2
) -> torch.Tensor:
    """MoCo's InfoNCE against a queue of negatives (arXiv:1911.05722, Eq. 1).

    "a query q and a set of encoded samples {k0, k1, k2, ...} that are the keys of
    a dictionary ... The contrastive loss is low when q is similar to its positive
    key k+ and dissimilar to all other keys": each query's positive is the key of
    the same image; its negatives are the K queued keys. The positive sits in
    column 0 of the logits, so the target class is 0 for every row. Keys get no
    gradient (they come from the momentum encoder).

    Args:
        q: (B, D) queries (normalized here).
        k: (B, D) keys of the same images (normalized here, detached).
        queue: (K, D) unit-norm keys of past batches.
        temperature: tau; MoCo v2 uses 0.2.
    """
    if q.shape != k.shape or queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(
            f"need q, k (B, D) and queue (K, D); got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(queue.shape)}"
        )
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.detach().float(), dim=1)
    l_pos = torch.einsum("nc,nc->n", q, k).unsqueeze(1)  # (B, 1)
    l_neg = torch.einsum("nc,kc->nk", q, queue.detach().float())  # (B, K)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (B, 1 + K)
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)  # the positive is column 0
    return F.cross_entropy(logits, labels)


@float32_loss
def info_nce_in_batch(q: torch.Tensor, k: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """InfoNCE with the other images' keys in the (gathered) batch as negatives (MoCo v3, arXiv:2104.02057, Alg. 1).

    "MoCo v3 ... uses the keys that naturally co-exist in the same batch" (Sec. 3):
    query i's positive is key i; the keys of every other image on every rank are
    negatives. Keys get no gradient. MoCo v3's pseudo-code scales this by 2*tau;
    the caller does, as the paper writes it.

    Args:
        q: (B, D) queries of this rank (normalized here).
        k: (B, D) keys of the same images (normalized here, detached, gathered across ranks).
        temperature: tau; MoCo v3 uses 1.0 for ResNets, 0.2 for ViTs.
    """
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape, got {tuple(q.shape)} and {tuple(k.shape)}")
    q = F.normalize(q.float(), dim=1)  # (B, D)
    k = F.normalize(gather(k.detach()).float(), dim=1)  # (W*B, D)
    logits = q @ k.T / temperature  # (B, W*B)
    labels = torch.arange(q.shape[0], device=q.device) + rank() * q.shape[0]  # this rank's images in the gathered keys
    return F.cross_entropy(logits, labels)
