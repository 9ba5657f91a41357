"""Triplet loss with batch-hard mining.

Hermans, Beyer & Leibe, "In Defense of the Triplet Loss for Person
Re-Identification", arXiv:1703.07737: "for each sample a in the batch, we can
select the hardest positive and the hardest negative samples within the batch
when forming the triplets" (Sec. 2). "Revisiting Self-Supervised Visual
Representation Learning" (arXiv:1901.09005) trains Exemplar with a triplet loss
over the augmented copies of each image, one class per image.
"""
from __future__ import annotations

import torch


def batch_hard_triplet(embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.5) -> torch.Tensor:
    """Mean over anchors of relu(max_p d(a, p) - min_n d(a, n) + margin), Euclidean distances.

    ``embeddings`` (N, D), ``labels`` (N,): rows with equal labels are positives
    of each other (the anchor itself excluded), all others negatives. Every
    label needs at least two rows and there must be two labels.
    """
    if embeddings.ndim != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(
            f"embeddings must be (N, D) and labels (N,), got {tuple(embeddings.shape)} and {tuple(labels.shape)}"
        )
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    z = embeddings.float()
    sq = (z * z).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * z @ z.T).clamp_min(0.0)  # (N, N)
    same = labels[:, None] == labels[None, :]  # (N, N)
    self_pair = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive, negative = same & ~self_pair, ~same
    if not bool(positive.any(1).all()) or not bool(negative.any(1).all()):
        raise ValueError("every label needs at least two rows, and there must be at least two labels")
    # sqrt only of the picked entries (its gradient is infinite at 0, e.g. on the diagonal)
    hardest_pos = d2.masked_fill(~positive, float("-inf")).amax(1)  # (N,)
    hardest_neg = d2.masked_fill(~negative, float("inf")).amin(1)  # (N,)
    d_ap = hardest_pos.clamp_min(1e-12).sqrt()
    d_an = hardest_neg.clamp_min(1e-12).sqrt()
    return torch.relu(d_ap - d_an + margin).mean()
