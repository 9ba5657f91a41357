"""Protocols that train with labels on top of a backbone: the SGD linear probe and few-shot fine-tuning.

Both follow "Revisiting" (Kolesnikov et al. 2019) and the semi-supervised
benchmarks of SimCLR/BYOL: random crops and flips of the labelled images, SGD
with momentum, a cosine or step schedule, and the test split touched once at
the end. Hyper-parameters are either fixed in advance (fine-tuning: the same
recipe for a trained and a random-init network) or picked on a held-out part
of the training split (the probe's learning rate), never on the test split.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from selfsup.augment import ViewAugment, to_input
from selfsup.backbones.base import Backbone
from selfsup.data import ImageDataset, iterate
from selfsup.eval.linear import topk_accuracy
from selfsup.precision import Precision, autocast, autocast_dtype
from selfsup.schedules import warmup_cosine


def balanced_subset(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of ``fraction`` of each class (at least one image per class), drawn with a fixed seed.

    The 1% / 10% subsets of the semi-supervised benchmark are class-balanced, so
    the rare classes are not left out of a tiny labelled set by chance.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        picked.append(rng.choice(members, size=max(1, round(fraction * len(members))), replace=False))
    return np.sort(np.concatenate(picked))


def holdout_split(n: int, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded (train, held-out) split of ``range(n)``."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(val_fraction * n))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def labelled_batches(dataset: ImageDataset, batch_size: int, steps: int, seed: int,
                     device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` shuffled batches (uint8 (B, C, H, W), int64 (B,)), reshuffled every epoch."""
    if dataset.labels is None:
        raise ValueError(f"{dataset.name}: no labels, so there is nothing to train a classifier on")
    rng = np.random.default_rng(seed)
    batch_size = min(batch_size, len(dataset))
    order, pos = rng.permutation(len(dataset)), 0
    for _ in range(steps):
        if pos + batch_size > len(order):
            order, pos = rng.permutation(len(dataset)), 0
        idx = np.sort(order[pos : pos + batch_size])
        pos += batch_size
        images = torch.from_numpy(np.array(dataset.images[idx])).to(device).permute(0, 3, 1, 2)  # (B, C, H, W)
        yield images, torch.from_numpy(np.asarray(dataset.labels)[idx]).long().to(device)


def lr_schedule(lr: float, steps: int, schedule: Literal["cosine", "step"]) -> np.ndarray:
    """Per-step learning rates: cosine to zero (the training loop's, without warm-up), or step decay
    by 10x at 60% and 80% of training ("Revisiting")."""
    if schedule == "cosine":
        return warmup_cosine(lr, steps)
    if schedule == "step":
        t = np.arange(steps)
        return lr * 0.1 ** ((t >= 0.6 * steps).astype(int) + (t >= 0.8 * steps))
    raise ValueError(f"schedule must be 'cosine' or 'step', got {schedule!r}")


def train_augment(dataset: ImageDataset, size: int) -> ViewAugment:
    """Random-resized crops and flips only, as in the linear and semi-supervised protocols."""
    return ViewAugment(size, crop_scale=(0.5, 1.0), jitter_p=0.0, gray_p=0.0,
                       mean=tuple(dataset.mean), std=tuple(dataset.std))


@torch.no_grad()
def predict(model: nn.Module, dataset: ImageDataset, size: int, device: torch.device, precision: str,
            batch_size: int = 512) -> torch.Tensor:
    """Logits (N, classes) of ``model`` on the centre-resized images, float32 on the CPU."""
    model.eval()
    out = []
    for batch in iterate(dataset, batch_size, device):
        x = to_input(batch.images, dataset.mean, dataset.std, size).contiguous(memory_format=torch.channels_last)
        with autocast(device, autocast_dtype(precision, device)):
            out.append(model(x).float().cpu())
    return torch.cat(out)


class _FrozenProbes(nn.Module):
    """A frozen backbone under one parameter-free BatchNorm and several linear heads (one per learning rate)."""

    def __init__(self, backbone: Backbone, num_classes: int, n_heads: int):
        super().__init__()
        self.backbone = backbone.requires_grad_(False)
        self.norm = nn.BatchNorm1d(backbone.out_dim, affine=False)  # standardizes features, as MAE's linear probe
        self.heads = nn.ModuleList(nn.Linear(backbone.out_dim, num_classes) for _ in range(n_heads))
        self.use = 0  # the head forward() answers with

    def train(self, mode: bool = True):
        super().train(mode)
        self.backbone.eval()  # frozen means frozen BN statistics too
        return self

    def forward(self, x: torch.Tensor, all_heads: bool = False):
        with torch.no_grad():
            h = self.backbone(x).float()  # (B, D)
        z = self.norm(h)
        return [head(z) for head in self.heads] if all_heads else self.heads[self.use](z)


@dataclass
class SGDProbeResult:
    lr: float
    val_top1: dict[float, float]  # held-out accuracy of every learning rate tried
    top1: float
    top5: float


def sgd_probe(backbone: Backbone, train: ImageDataset, test: ImageDataset, size: int, *,
              steps: int = 1000, batch_size: int = 256, lrs: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0),
              momentum: float = 0.9, weight_decay: float = 0.0, schedule: Literal["cosine", "step"] = "cosine",
              augment: bool = True, val_fraction: float = 0.1, device: str | torch.device = "cpu",
              precision: Precision = "auto", seed: int = 0, progress: bool = False) -> SGDProbeResult:
    """Linear classifier on frozen features trained by SGD on augmented images.

    One head per learning rate in ``lrs`` is trained on the same forward passes
    (the backbone costs the same for one head or five); the head with the best
    accuracy on a held-out ``val_fraction`` of the training split is the one
    scored on ``test``.
    """
    device = torch.device(device)
    fit_idx, val_idx = holdout_split(len(train), val_fraction, seed)
    fit, val = train.subset(fit_idx), train.subset(val_idx)
    probes = _FrozenProbes(backbone, train.num_classes, len(lrs)).to(device)
    opt = torch.optim.SGD([{"params": h.parameters(), "lr": lr, "base_lr": lr} for h, lr in zip(probes.heads, lrs)],
                          momentum=momentum, weight_decay=weight_decay)
    aug = train_augment(train, size)
    factors = lr_schedule(1.0, steps, schedule)  # each head's lr times this
    probes.train()
    for step, (images, labels) in enumerate(tqdm(labelled_batches(fit, batch_size, steps, seed, device), total=steps,
                                                 desc="sgd probe", disable=not progress)):
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * float(factors[step])
        x = aug(images) if augment else to_input(images, train.mean, train.std, size)
        with autocast(device, autocast_dtype(precision, device)):
            logits = probes(x.contiguous(memory_format=torch.channels_last), all_heads=True)
        loss = sum(F.cross_entropy(z.float(), labels) for z in logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    val_top1 = {}
    for i, lr in enumerate(lrs):
        probes.use = i
        val_top1[lr] = topk_accuracy(predict(probes, val, size, device, precision), val.labels)["top1"]
    best = max(lrs, key=lambda lr: (val_top1[lr], -lr))
    probes.use = lrs.index(best)
    scores = topk_accuracy(predict(probes, test, size, device, precision), test.labels)
    return SGDProbeResult(lr=best, val_top1=val_top1, **scores)


class _Classifier(nn.Module):
    def __init__(self, backbone: Backbone, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.out_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def finetune(backbone: Backbone, train: ImageDataset, test: ImageDataset, size: int, *, steps: int = 500,
             batch_size: int = 128, lr: float = 0.05, momentum: float = 0.9, weight_decay: float = 5e-4,
             device: str | torch.device = "cpu", precision: Precision = "auto", seed: int = 0,
             progress: bool = False) -> dict[str, float]:
    """Fine-tune a copy of the whole network plus a new linear head on ``train``; top-1/top-5 on ``test``.

    The recipe is fixed (SGD with momentum, cosine schedule, crops and flips)
    and identical for every backbone compared, trained or random init.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    model = _Classifier(copy.deepcopy(backbone), train.num_classes).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    aug = train_augment(train, size)
    lrs = lr_schedule(lr, steps, "cosine")
    model.train()
    for step, (images, labels) in enumerate(tqdm(labelled_batches(train, batch_size, steps, seed, device), total=steps,
                                                 desc="fine-tune", disable=not progress)):
        for group in opt.param_groups:
            group["lr"] = float(lrs[step])
        with autocast(device, autocast_dtype(precision, device)):
            logits = model(aug(images).contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits.float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return topk_accuracy(predict(model, test, size, device, precision), test.labels)
