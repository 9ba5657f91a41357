"""The online probe: a weighted kNN of the backbone's pre-logits on the validation split, every N steps of training.

A user watches the representation improve, or collapse, while it trains (solo-learn
and stable-pretraining log the same). The probe reads the backbone in eval mode
under ``torch.no_grad`` and draws no random number, so training takes the same
trajectory with and without it; its seconds are logged beside its score.
"""
from __future__ import annotations

import time

import torch

from selfsup.backbones.base import Backbone
from selfsup.config import RunConfig
from selfsup.data import ImageDataset
from selfsup.eval.frozen import evaluate_backbone
from selfsup.eval.supervised import balanced_subset
from selfsup.precision import resolved
from selfsup.registry import InputError
from selfsup.train.build import load_train_data


class OnlineProbe:
    """kNN top-1 on ``train.probe_val`` validation images, its bank ``train.probe_bank`` training images."""

    def __init__(self, cfg: RunConfig, device: torch.device):
        t = cfg.train
        bank, val = (load_train_data(cfg, split=s) for s in (cfg.data.split, "val"))
        if bank.labels is None:
            raise InputError(f"train.probe_every={t.probe_every}: {bank.name}'s training split has no labels for "
                             "the kNN bank; set train.probe_every=0")
        self.bank: ImageDataset = _balanced(bank, t.probe_bank)
        self.val: ImageDataset = _balanced(val, t.probe_val)
        self.size = cfg.augment.get("size") or cfg.data.resolution
        self.k, self.temperature = min(cfg.eval.knn_k, len(self.bank)), cfg.eval.knn_temperature
        self.device, self.precision = device, resolved(cfg.eval.precision or t.precision, device)
        self.batch_size = cfg.eval.batch_size

    def __call__(self, backbone: Backbone) -> dict:
        t0 = time.perf_counter()
        scores = evaluate_backbone(backbone, self.bank, self.val, self.size, device=self.device,
                                   precision=self.precision, batch_size=self.batch_size, knn_k=self.k,
                                   knn_temperature=self.temperature, linear=False, knn_precision=self.precision)
        return {"val_knn_top1": scores["knn_top1"], "probe_s": round(time.perf_counter() - t0, 2)}


def _balanced(dataset: ImageDataset, n: int) -> ImageDataset:
    """About ``n`` images, the same share of every class (a folder sorted by class must not give one class)."""
    if n >= len(dataset):
        return dataset
    return dataset.subset(balanced_subset(dataset.labels, n / len(dataset), seed=0))
