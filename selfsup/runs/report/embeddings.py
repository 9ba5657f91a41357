"""A run's frozen pre-logits for the report's retrieval grids and 2-D maps.

Features come from the feature cache ``selfsup eval`` fills (RUN_DIR/features,
keyed by the exported weights' digest) when it holds this run's current
weights; otherwise they are extracted afresh from a bounded number of images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from selfsup.data import ImageDataset
from selfsup.eval.features import backbone_features, file_digest
from selfsup.runs.evaluate import features_tag
from selfsup.runs.folder import BACKBONE_FILE, load_backbone, read_run_config
from selfsup.train.build import load_train_data


def _cached(run_dir: Path, dataset: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(train, test) pre-logits cached for the run's current weights on its own dataset, or None."""
    weights = run_dir / BACKBONE_FILE
    if not weights.exists():
        return None
    pattern = features_tag(f"trained-{file_digest(weights)}", "*", dataset, "*")
    for folder in sorted((run_dir / "features").glob(pattern)):
        train, test = (folder / split / "pre_logits__poolnone.npy" for split in ("train", "test"))
        if train.exists() and test.exists():
            return np.load(train, mmap_mode="r"), np.load(test, mmap_mode="r")  # sliced and copied by the caller
    return None


def run_features(run_dir: str | Path, max_train: int = 10_000, max_test: int = 3000, device: str = "cpu",
                 datasets: dict | None = None) -> tuple[np.ndarray, ImageDataset, np.ndarray, ImageDataset]:
    """(train features, train images, test features, test images) of a run, at most ``max_train`` / ``max_test`` each.

    Rows are the first images of each split (as the feature cache stores them).
    ``datasets`` memoizes loaded splits across runs, keyed by (name, split).
    """
    run_dir = Path(run_dir)
    cfg = read_run_config(run_dir)
    datasets = {} if datasets is None else datasets
    splits = []
    for split in (cfg.data.split, cfg.data.eval_split):
        key = (cfg.data.name, cfg.data.root, cfg.data.resolution, split)
        if key not in datasets:
            datasets[key] = load_train_data(cfg, split=split)
        splits.append(datasets[key])
    train, test = splits
    cached = _cached(run_dir, cfg.data.name)
    if cached is not None:
        n_train, n_test = min(max_train, len(cached[0])), min(max_test, len(cached[1]))
        return (np.array(cached[0][:n_train]), train.subset(range(n_train)),
                np.array(cached[1][:n_test]), test.subset(range(n_test)))
    backbone, _ = load_backbone(run_dir)
    size = cfg.augment.get("size") or cfg.data.resolution or train.resolution
    train, test = train.subset(range(min(max_train, len(train)))), test.subset(range(min(max_test, len(test))))
    feats = [backbone_features(backbone, ds, size, device=device).numpy() for ds in (train, test)]
    return feats[0], train, feats[1], test


def pick_queries(labels: np.ndarray | None, n: int = 8) -> np.ndarray:
    """Indices of ``n`` test images, the first of each class in turn (so the grid shows several classes)."""
    if labels is None:
        return np.arange(n)
    order = []
    for c in np.unique(labels):
        order.append(np.flatnonzero(labels == c))
    picked, rank = [], 0
    while len(picked) < n and any(rank < len(o) for o in order):
        picked += [int(o[rank]) for o in order if rank < len(o)][: n - len(picked)]
        rank += 1
    return np.array(picked)


def nearest_neighbours(train_f: np.ndarray, query_f: np.ndarray, k: int = 8) -> np.ndarray:
    """Indices (Q, k) of each query's ``k`` most cosine-similar training features, nearest first."""
    a = F.normalize(torch.as_tensor(np.asarray(train_f), dtype=torch.float32), dim=1)  # (N, D)
    q = F.normalize(torch.as_tensor(np.asarray(query_f), dtype=torch.float32), dim=1)  # (Q, D)
    return (q @ a.T).topk(min(k, a.shape[0]), dim=1).indices.numpy()


def tsne_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, 2) t-SNE map of (N, D) features, after PCA to at most 50 dims (the usual speed-up)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(features, dtype=np.float32)
    x = (x - x.mean(0)) / (x.std(0).mean() + 1e-8)
    if x.shape[1] > 50 and x.shape[0] > 50:
        x = PCA(50, random_state=seed).fit_transform(x)
    perplexity = min(30.0, (x.shape[0] - 1) / 3)
    return TSNE(2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)
