"""Keeping some forward passes out of BatchNorm's running statistics."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def running_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Inside the block, BatchNorm layers in train mode still normalise with the batch's statistics
    but leave their running mean and variance (used at evaluation) as they are.

    Multi-crop (SwAV, DINO) passes small low-resolution crops through the same
    network as the full-size ones; their feature statistics differ, and evaluation
    runs at full size. Training is unchanged: only the running averages skip them
    (what it gained SwAV: docs/methods.md#swav).
    """
    layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None]
    saved = [m.momentum for m in layers]
    for m in layers:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, momentum in zip(layers, saved):
            m.momentum = momentum
