"""SwAV's swapped prediction loss (Caron et al. 2020, arXiv:2006.09882, Eq. 1-2)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def swapped_prediction(
    scores: Sequence[torch.Tensor], codes: Sequence[torch.Tensor], temperature: float = 0.1
) -> torch.Tensor:
    """Predict the code of one view from every other view of the same image.

    "we propose to predict the code of a view from the representation of
    another view": L(z_t, z_s) = l(z_t, q_s) + l(z_s, q_t) with
    l(z, q) = -sum_k q^(k) log p^(k), p = softmax(z^T c / tau) (Eq. 1-2). With
    multi-crop, "we only compute codes for the full resolution crops" and every
    other crop predicts them; the loss is averaged over the pairs.

    Args:
        scores: V tensors (B, K), each view's similarities to the prototypes; the
            first ``len(codes)`` are the views that have codes.
        codes: tensors (B, K), targets whose rows sum to 1 (from ``sinkhorn_knopp``).
        temperature: tau (the paper's 0.1).
    """
    if not 1 <= len(codes) <= len(scores) or len(scores) < 2:
        raise ValueError(f"need >= 2 views and 1..V codes, got {len(scores)} views and {len(codes)} codes")
    if any(s.shape != scores[0].shape for s in [*scores, *codes]):
        raise ValueError(f"scores and codes must all have one shape, got {[tuple(s.shape) for s in [*scores, *codes]]}")
    log_p = [F.log_softmax(s.float() / temperature, dim=1) for s in scores]  # V x (B, K)
    total = scores[0].new_zeros((), dtype=torch.float32)
    for i, q in enumerate(codes):
        others = [-(q.float() * lp).sum(dim=1).mean() for v, lp in enumerate(log_p) if v != i]
        total = total + torch.stack(others).mean()
    return total / len(codes)
