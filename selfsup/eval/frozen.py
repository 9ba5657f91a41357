"""The standard scores of a frozen representation: weighted kNN, the L-BFGS linear probe, label-free monitors.

Accuracies are percentages; the probe's L2 weight is chosen on a held-out part of
the training features, never on the test split.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from selfsup.backbones.base import Backbone
from selfsup.data import ImageDataset
from selfsup.eval.features import backbone_features, pixel_features
from selfsup.eval.knn import knn_accuracy
from selfsup.eval.linear import evaluate, fit_linear_probe
from selfsup.nn.monitors import embedding_std, rankme
from selfsup.precision import Precision, resolved


def knn_scores_of(train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, test_y: np.ndarray, *,
                  k: int = 200, temperature: float = 0.07, precision: Precision = "fp32") -> dict:
    """kNN top-1 plus the dimensions and the monitors (std, RankMe) of the test features."""
    return {"dims": int(train_x.shape[1]),
            "knn_top1": knn_accuracy(train_x, train_y, test_x, test_y, k=k, temperature=temperature,
                                     precision=resolved(precision, train_x.device)),
            "emb_std": embedding_std(test_x), "rankme": rankme(test_x)}


def linear_scores_of(train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, test_y: np.ndarray, *,
                     seed: int = 0) -> dict:
    """The L-BFGS probe's top-1 and top-5, and the L2 weight its held-out search chose."""
    probe = fit_linear_probe(train_x, train_y, seed=seed)
    scores = evaluate(probe, test_x, test_y)
    return {"linear_top1": scores["top1"], "linear_top5": scores["top5"], "linear_l2": probe.l2}


def score_features(train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, test_y: np.ndarray, *,
                   knn_k: int = 200, knn_temperature: float = 0.07, linear: bool = True, seed: int = 0,
                   knn_precision: Precision = "fp32") -> dict:
    """kNN and (with ``linear``) linear-probe scores of one pair of feature matrices, and the seconds they took."""
    t0 = time.perf_counter()
    out = knn_scores_of(train_x, train_y, test_x, test_y, k=knn_k, temperature=knn_temperature, precision=knn_precision)
    if linear:
        out.update(linear_scores_of(train_x, train_y, test_x, test_y, seed=seed))
    out["seconds"] = time.perf_counter() - t0
    return out


def evaluate_backbone(backbone: Backbone, train: ImageDataset, test: ImageDataset, size: int | None, *,
                      device: torch.device | str = "cpu", precision: Precision = "auto", batch_size: int = 512,
                      **scores) -> dict:
    """Frozen pre-logits of ``backbone`` (extracted in ``precision``) scored on ``test``, probes fit on ``train``;
    ``scores`` are ``score_features``' options."""
    feats = [backbone_features(backbone, ds, size, device=device, precision=precision, batch_size=batch_size)
             for ds in (train, test)]
    return score_features(feats[0], train.labels, feats[1], test.labels, **scores)


def evaluate_pixels(train: ImageDataset, test: ImageDataset, **scores) -> dict:
    """Raw pixels scored like a representation (statistics from the training split only)."""
    stats = (train.mean, train.std)
    return score_features(pixel_features(train, *stats), train.labels, pixel_features(test, *stats), test.labels,
                          **scores)
