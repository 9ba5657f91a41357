"""k-means and partition scores: blobs recovered, empty clusters re-seeded, relabelled classes scored perfect."""
from __future__ import annotations

import pytest
import torch

from selfsup.eval import cluster_scores, kmeans, partition_scores

pytestmark = pytest.mark.usefixtures("one_thread")


def _blobs(n_per: int = 200, centers: int = 4, dim: int = 16, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mu = 10.0 * torch.randn(centers, dim, generator=g)
    y = torch.arange(centers).repeat_interleave(n_per)
    return mu[y] + torch.randn(len(y), dim, generator=g), y


def test_kmeans_recovers_well_separated_blobs():
    x, y = _blobs()
    scores = cluster_scores(x, y, 4, seed=1)
    assert scores["nmi"] > 0.95
    assert scores["purity"] > 0.95


def test_kmeans_with_more_clusters_than_distinct_points_keeps_valid_assignments():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).repeat(10, 1)  # 30 rows, 3 distinct
    result = kmeans(x, 5, seed=0)
    assert result.assignments.shape == (30,)
    assert int(result.assignments.max()) < 5
    assert result.inertia == pytest.approx(0.0, abs=1e-6)
    assert len(result.assignments.unique()) == 3


def test_kmeans_reseeds_an_empty_cluster():
    x, _ = _blobs(centers=3)
    init = torch.cat([x[[0, 200, 400]], torch.full((1, x.shape[1]), 1e4)])  # 4th centroid far from all data
    result = kmeans(x, 4, init=init)
    assert len(result.assignments.unique()) == 4
    assert result.centroids.abs().max() < 1e3


def test_partition_scores_are_perfect_for_relabelled_classes():
    y = torch.arange(5).repeat(20)
    scores = partition_scores((y + 2) % 5, y)
    assert scores == pytest.approx({"nmi": 1.0, "ari": 1.0, "purity": 1.0})


def test_kmeans_rejects_k_larger_than_the_number_of_rows():
    with pytest.raises(ValueError, match="k must be"):
        kmeans(torch.randn(3, 2), 4)
