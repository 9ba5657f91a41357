"""Evaluate a run folder (or a baseline) with the standard protocols and write JSON beside it.

Numbers reported are always those of the final checkpoint on the test split;
the probe's L2 weight is chosen on a held-out part of the training split.
"""
from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from selfsup.augment import to_input
from selfsup.backbones.base import Backbone
from selfsup.data import ImageDataset
from selfsup.eval.features import extract_features
from selfsup.eval.knn import knn_accuracy
from selfsup.eval.linear import evaluate as evaluate_probe
from selfsup.eval.linear import fit_linear_probe
from selfsup.eval.monitors import embedding_std, rankme


def score_features(train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, test_y: np.ndarray,
                   knn_k: int = 200, knn_temperature: float = 0.07, linear: bool = True, seed: int = 0) -> dict:
    """kNN and linear-probe top-1 (percent) plus label-free monitors of one feature matrix."""
    t0 = time.perf_counter()
    out = {"dims": int(train_x.shape[1]),
           "knn_top1": knn_accuracy(train_x, train_y, test_x, test_y, k=knn_k, temperature=knn_temperature),
           "emb_std": embedding_std(test_x), "rankme": rankme(test_x)}
    if linear:
        probe = fit_linear_probe(train_x, train_y, seed=seed)
        scores = evaluate_probe(probe, test_x, test_y)
        out.update(linear_top1=scores["top1"], linear_top5=scores["top5"], linear_l2=probe.l2)
    out["seconds"] = time.perf_counter() - t0
    return out


def backbone_features(backbone: Backbone, dataset: ImageDataset, size: int, device: torch.device | str = "cpu",
                      batch_size: int = 512, precision: str = "bf16") -> torch.Tensor:
    transform = partial(to_input, mean=dataset.mean, std=dataset.std, size=size)
    return extract_features(backbone.to(device), dataset.images, transform, batch_size=batch_size,
                            device=device, precision=precision)["pre_logits"]


def evaluate_backbone(backbone: Backbone, train: ImageDataset, test: ImageDataset, size: int, **kw) -> dict:
    """Frozen pre-logits of ``backbone`` scored on ``test``, probes fit on ``train``."""
    device = kw.pop("device", "cpu")
    precision = kw.pop("precision", "bf16")
    feats = [backbone_features(backbone, ds, size, device=device, precision=precision) for ds in (train, test)]
    return score_features(feats[0], train.labels, feats[1], test.labels, **kw)


def pixel_features(dataset: ImageDataset, mean, std) -> torch.Tensor:
    """Raw pixels (N, H*W*C), standardized per channel: the baseline every representation must beat."""
    x = torch.from_numpy(np.asarray(dataset.images)).float().div_(255)  # (N, H, W, C)
    return ((x - torch.tensor(mean)) / torch.tensor(std)).flatten(1)


def evaluate_pixels(train: ImageDataset, test: ImageDataset, **kw) -> dict:
    """Raw pixels scored like a representation (statistics from the training split only)."""
    stats = (train.mean, train.std)
    return score_features(pixel_features(train, *stats), train.labels, pixel_features(test, *stats), test.labels, **kw)


def evaluate_run(run_dir: str | Path, random_init: bool = False, device: str = "cpu") -> dict:
    """Evaluate the run's final backbone (or the same architecture at random init); write eval*.json."""
    from selfsup.train.build import load_backbone, load_train_data, make_backbone, read_run_config

    run_dir = Path(run_dir)
    if random_init:
        cfg = read_run_config(run_dir)
        torch.manual_seed(cfg.train.seed)
        backbone = make_backbone(cfg)
    else:
        backbone, cfg = load_backbone(run_dir)
    train = load_train_data(cfg, split=cfg.data.split)
    test = load_train_data(cfg, split=cfg.data.eval_split)
    for ds, role in ((train, "training"), (test, "test")):
        if ds.labels is None:
            raise ValueError(f"{cfg.data.name}/{ds.name}: the {role} split has no labels, so kNN and linear probes cannot run")
    size = cfg.augment.get("size", train.resolution)
    e = cfg.eval
    results = evaluate_backbone(backbone, train, test, size, device=device, knn_k=e.knn_k,
                                knn_temperature=e.knn_temperature, linear=e.linear, seed=cfg.train.seed)
    results.update(run=str(run_dir), weights="random_init" if random_init else "trained",
                   train_split=cfg.data.split, test_split=cfg.data.eval_split)
    name = "eval_random_init.json" if random_init else "eval.json"
    (run_dir / name).write_text(json.dumps(results, indent=2))
    return results


def format_results(results: dict) -> str:
    keys = [k for k in ("knn_top1", "linear_top1", "linear_top5", "rankme", "emb_std", "dims") if k in results]
    return "\n".join(f"{k:>12}: {results[k]:.4g}" if isinstance(results[k], float) else f"{k:>12}: {results[k]}" for k in keys)
