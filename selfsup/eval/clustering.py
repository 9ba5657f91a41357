"""k-means on features, and how well the clusters agree with the labels (NMI, ARI, purity).

Used as an evaluation (cluster the frozen features, score against classes, as
in DeepCluster's NMI curves, arXiv:1807.05520) and by DeepCluster-style methods
to make pseudo-labels, hence a torch implementation that runs on the training
device and re-seeds empty clusters instead of leaving dead centroids.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from selfsup.eval.features import ArrayLike, as_features, as_labels


@dataclass
class KMeansResult:
    assignments: torch.Tensor  # (N,) int64 cluster of each row
    centroids: torch.Tensor  # (k, D)
    inertia: float  # sum of squared distances of rows to their centroid
    n_iter: int  # Lloyd iterations run


def squared_distances(x: torch.Tensor, centroids: torch.Tensor, x_sq: torch.Tensor | None = None) -> torch.Tensor:
    """||x_i - c_j||^2 (N, k) through the matmul expansion, clamped at 0 against rounding.

    ``x_sq`` (N,) are the rows' squared norms when already known (they never change across iterations).
    """
    x_sq = (x * x).sum(1) if x_sq is None else x_sq
    d2 = torch.addmm((centroids * centroids).sum(1), x, centroids.T, alpha=-2.0)  # (N, k)
    return d2.add_(x_sq[:, None]).clamp_min_(0.0)


def _nearest(
    x: torch.Tensor, x_sq: torch.Tensor, centroids: torch.Tensor, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index (N,) of each row's nearest centroid and the squared distance (N,) to it."""
    dist, idx = [], []
    for start in range(0, x.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        d, i = squared_distances(x[rows], centroids, x_sq[rows]).min(dim=1)
        dist.append(d)
        idx.append(i)
    return torch.cat(idx), torch.cat(dist)


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k initial centroids (k, D): each next one drawn with probability proportional to D(x)^2.

    Arthur & Vassilvitskii 2007. When every row already coincides with a chosen
    centroid (fewer distinct rows than k), the draw falls back to uniform.
    """
    n = x.shape[0]
    x_sq = (x * x).sum(1)  # (N,)
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = [first]
    min_d2 = squared_distances(x, x[first : first + 1], x_sq).squeeze(1)  # (N,)
    for _ in range(1, k):
        weights = min_d2.double().cpu()
        if float(weights.sum()) > 0:
            nxt = int(torch.multinomial(weights, 1, generator=generator))
        else:
            nxt = int(torch.randint(n, (1,), generator=generator))
        chosen.append(nxt)
        min_d2 = torch.minimum(min_d2, squared_distances(x, x[nxt : nxt + 1], x_sq).squeeze(1))
    return x[chosen].clone()


def kmeans(
    features: ArrayLike,
    k: int,
    *,
    n_iter: int = 50,
    seed: int = 0,
    init: torch.Tensor | None = None,
    chunk_size: int = 16384,
) -> KMeansResult:
    """Lloyd's k-means with k-means++ initialisation, until assignments stop changing.

    A cluster that loses all its rows is re-seeded at the row farthest from its
    own centroid (so k clusters stay in use); if every row sits exactly on a
    centroid (k exceeds the number of distinct rows) nothing can be split and
    the cluster stays empty. ``init`` (k, D) replaces the k-means++ start
    (e.g. the previous epoch's centroids in DeepCluster).
    """
    x = as_features(features, "features")
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of rows ({n}), got {k}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    if init is None:
        centroids = kmeans_plus_plus(x, k, torch.Generator().manual_seed(seed))  # (k, D)
    elif tuple(init.shape) != (k, x.shape[1]):
        raise ValueError(f"init must be (k, D) = ({k}, {x.shape[1]}), got {tuple(init.shape)}")
    else:
        centroids = init.detach().to(x.device, torch.float32).clone()
    x_sq = (x * x).sum(1)  # (N,)
    assign, dist = _nearest(x, x_sq, centroids, chunk_size)
    it = 0
    for it in range(1, n_iter + 1):  # noqa: B007 -- read after the loop: the iterations run
        counts = torch.bincount(assign, minlength=k)  # (k,)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)  # (k, D)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None].to(x.dtype)
        dist = dist.clone()
        for empty in torch.nonzero(~filled).flatten().tolist():
            far = int(dist.argmax())
            if float(dist[far]) <= 0:
                break
            centroids[empty] = x[far]
            dist[far] = 0.0
        new_assign, dist = _nearest(x, x_sq, centroids, chunk_size)
        changed = bool((new_assign != assign).any())
        assign = new_assign
        if not changed:
            break
    return KMeansResult(assign, centroids, float(dist.double().sum()), it)


def partition_scores(assignments: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """NMI, ARI and purity (all in [0, 1]) of a partition against the true classes."""
    a = as_labels(assignments, len(assignments), "assignments").cpu().numpy()
    y = as_labels(labels, len(a), "labels").cpu().numpy()
    if len(a) == 0:
        raise ValueError("assignments is empty: nothing to score")
    contingency = np.zeros((a.max() + 1, y.max() + 1), dtype=np.int64)  # (clusters, classes)
    np.add.at(contingency, (a, y), 1)
    return {
        "nmi": float(normalized_mutual_info_score(y, a)),
        "ari": float(adjusted_rand_score(y, a)),
        "purity": float(contingency.max(axis=1).sum() / len(a)),
    }


def cluster_scores(
    features: ArrayLike,
    labels: ArrayLike,
    k: int | None = None,
    *,
    n_iter: int = 50,
    seed: int = 0,
) -> dict[str, float]:
    """Cluster ``features`` into ``k`` groups (default: the number of classes) and score them."""
    y = as_labels(labels, len(features), "labels")
    k = int(y.max()) + 1 if k is None else k
    result = kmeans(features, k, n_iter=n_iter, seed=seed)
    return partition_scores(result.assignments, y)
