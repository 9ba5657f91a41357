"""Sinkhorn-Knopp equipartition of a batch over prototypes (SwAV, arXiv:2006.09882, Sec. 3.1).

"we restrict the transportation polytope to the minibatch ... the codes Q* are
the solution of max_Q Tr(Q^T C^T Z) + eps H(Q), Q = Diag(u) exp(C^T Z / eps) Diag(v)
where u and v are renormalization vectors ... computed using a small number of
matrix multiplications using the iterative Sinkhorn-Knopp algorithm" (Sec. 3.1);
"In practice, we observe that using only 3 iterations is fast and sufficient".

The transport plan P (K, B) has every prototype (row) holding mass 1/K and every
sample (column) mass 1/B: the batch is split evenly over the prototypes. In a
distributed run the columns are spread over ranks, so the row sums (over the
batch) and the total are all-reduced; column sums stay local.
"""
from __future__ import annotations

import torch

from selfsup.nn.distributed import all_reduce, world_size


@torch.no_grad()
def sinkhorn_knopp(scores: torch.Tensor, epsilon: float = 0.05, iterations: int = 3) -> torch.Tensor:
    """Soft codes (B, K) from prototype scores (B, K), each row summing to 1, columns to ~B/K.

    Computed in float32 without gradient, as the codes are targets. ``scores``
    are this rank's rows; in a distributed run the equipartition holds over
    the batch of all ranks.

    Args:
        scores: (B, K) similarities of normalized embeddings to normalized prototypes.
        epsilon: entropy weight; small values give sharp codes (the paper's 0.05).
        iterations: alternating row / column normalizations (the paper's 3).
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be (B, K), got shape {tuple(scores.shape)}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an int >= 1, got {iterations!r}")
    logits = scores.detach().float() / epsilon  # (B, K)
    # Shift by the GLOBAL max before exp (exp(1/0.01) overflows float32); a common factor cancels below.
    top = all_reduce(logits.max().reshape(1), "max")
    p = torch.exp(logits - top).T  # (K, B)
    k = p.shape[0]
    b = p.shape[1] * world_size()  # columns over all ranks
    p /= all_reduce(p.sum())
    for _ in range(iterations):
        p /= all_reduce(p.sum(dim=1, keepdim=True))  # (K, 1) each prototype's mass over the whole batch ...
        p /= k  # ... set to 1/K
        p /= p.sum(dim=0, keepdim=True)  # (1, B) each sample's mass (local) ...
        p /= b  # ... set to 1/B
    return (p * b).T  # (B, K): each row a distribution over prototypes
