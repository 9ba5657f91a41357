"""Per-layer linear probes: the accuracy of every named layer of a backbone, from stem to pre-logits.

Each spatial map is average-pooled to about ``pool_to`` dims (Zhang et al. 2016;
Goyal et al. 2019 use ~9k) so that layers of different sizes get probes of
similar capacity; the curve over depth shows where a method's features are
best (jigsaw's drop at the last block, "Revisiting" Fig. 2; PIRL's lack of it).
"""
from __future__ import annotations

from functools import partial
import torch

from selfsup.augment import to_input
from selfsup.backbones.base import Backbone
from selfsup.data import ImageDataset
from selfsup.eval.features import extract_features
from selfsup.eval.linear import evaluate, fit_linear_probe
from selfsup.methods.colorization import rgb_input


def pooled_features(backbone: Backbone, pool_to: int | None, device: str | torch.device = "cpu",
                    precision: str = "bf16", size: int | None = None, batch_size: int = 512):
    """``extract(dataset, layers) -> {layer: (N, D)}``, every requested layer read in one pass over the images
    through the evaluation transform (an L-only encoder wrapped to read it, ``rgb_input``)."""
    def extract(dataset: ImageDataset, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        transform = partial(to_input, mean=dataset.mean, std=dataset.std, size=size)
        return extract_features(rgb_input(backbone, dataset.mean, dataset.std).to(device), dataset.images, transform,
                                layers=tuple(layers), batch_size=batch_size, device=device, precision=precision,
                                pool_to=pool_to)
    return extract


def layer_probes(train_f: dict[str, torch.Tensor], train_y, test_f: dict[str, torch.Tensor], test_y,
                 seed: int = 0) -> dict[str, dict[str, float]]:
    """``{layer: {"dims", "top1", "top5", "l2"}}`` for every layer of ``train_f``, in its order (shallow to deep)."""
    out = {}
    for name, x in train_f.items():
        probe = fit_linear_probe(x, train_y, seed=seed)
        out[name] = {"dims": int(x.shape[1]), **evaluate(probe, test_f[name], test_y), "l2": probe.l2}
    return out
