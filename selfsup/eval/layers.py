"""Per-layer linear probes: the accuracy of every named layer of a backbone, from stem to pre-logits.

Each spatial map is average-pooled to about ``pool_to`` dims (Zhang et al. 2016;
Goyal et al. 2019 use ~9k) so that layers of different sizes get probes of
similar capacity; the curve over depth shows where a method's features are
best (jigsaw's drop at the last block, "Revisiting" Fig. 2; PIRL's lack of it).
"""
from __future__ import annotations

import torch

from selfsup.eval.linear import evaluate, fit_linear_probe


def layer_probes(train_f: dict[str, torch.Tensor], train_y, test_f: dict[str, torch.Tensor], test_y,
                 seed: int = 0) -> dict[str, dict[str, float]]:
    """``{layer: {"dims", "top1", "top5", "l2"}}`` for every layer of ``train_f``, in its order (shallow to deep)."""
    out = {}
    for name, x in train_f.items():
        probe = fit_linear_probe(x, train_y, seed=seed)
        out[name] = {"dims": int(x.shape[1]), **evaluate(probe, test_f[name], test_y), "l2": probe.l2}
    return out
