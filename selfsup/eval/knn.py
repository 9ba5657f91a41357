"""Weighted k-nearest-neighbour classification on frozen features.

The protocol of Wu et al. 2018 (NPID, arXiv:1805.01978), reused by DINO and
most joint-embedding papers: each of the k training points most cosine-similar
to a test point votes for its class with weight exp(s_i / tau), s_i its
similarity; the class with the largest summed weight wins. Test rows are processed in chunks so the (test, train)
similarity matrix never exists in full: 60k x 10k fits in a few hundred MB.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from selfsup.eval.features import ArrayLike, as_features, as_labels


def knn_scores(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    test_feats: ArrayLike,
    *,
    k: int = 200,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
    precision: Literal["fp32", "bf16"] = "fp32",
) -> torch.Tensor:
    """Class scores (M, num_classes) of each test row: summed exp(sim / T) of its k neighbours.

    ``k`` larger than the training set is clamped to its size (a tiny labelled
    split must still give an answer). ``precision="bf16"`` runs the similarity
    matmul in bfloat16 (faster where the hardware has bf16 units:
    docs/speed.md#bf16-on-the-cpu) at the price of reordering near-tied
    neighbours; ``"fp32"`` is exact.
    """
    train = as_features(train_feats, "train_feats")
    test = as_features(test_feats, "test_feats")
    labels = as_labels(train_labels, train.shape[0], "train_labels")
    if train.shape[0] == 0:
        raise ValueError("train_feats is empty: kNN needs at least one training point")
    if test.shape[1] != train.shape[1]:
        raise ValueError(f"test_feats has {test.shape[1]} dims but train_feats has {train.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    if int(labels.max()) >= n_classes:
        raise ValueError(f"train_labels holds class {int(labels.max())} but num_classes={n_classes}")
    k = min(k, train.shape[0])

    mm_dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    train_t = F.normalize(train, dim=1).to(mm_dtype).T.contiguous()  # (D, N)
    test = F.normalize(test, dim=1).to(mm_dtype)  # (M, D)
    labels = labels.to(test.device)
    scores = torch.zeros(test.shape[0], n_classes, device=test.device)  # (M, C)
    for start in range(0, test.shape[0], chunk_size):
        sim = (test[start : start + chunk_size] @ train_t).float()  # (m, N)
        top_sim, top_idx = sim.topk(k, dim=1)  # (m, k)
        weights = (top_sim / temperature).exp()  # (m, k)
        scores[start : start + chunk_size].scatter_add_(1, labels[top_idx], weights)
    return scores


def knn_classify(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    test_feats: ArrayLike,
    *,
    k: int = 200,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
    precision: Literal["fp32", "bf16"] = "fp32",
) -> torch.Tensor:
    """Predicted class (M,) int64 of each test row; see ``knn_scores``."""
    scores = knn_scores(
        train_feats, train_labels, test_feats, k=k, temperature=temperature,
        num_classes=num_classes, chunk_size=chunk_size, precision=precision,
    )
    return scores.argmax(dim=1)


def knn_accuracy(
    train_feats: ArrayLike,
    train_labels: ArrayLike,
    test_feats: ArrayLike,
    test_labels: ArrayLike,
    *,
    k: int = 200,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
    precision: Literal["fp32", "bf16"] = "fp32",
) -> float:
    """Top-1 accuracy in percent (0-100) of the weighted kNN classifier."""
    preds = knn_classify(
        train_feats, train_labels, test_feats, k=k, temperature=temperature,
        num_classes=num_classes, chunk_size=chunk_size, precision=precision,
    )
    truth = as_labels(test_labels, preds.shape[0], "test_labels").to(preds.device)
    return 100.0 * (preds == truth).float().mean().item() if len(truth) else float("nan")
