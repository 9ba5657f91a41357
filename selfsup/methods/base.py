"""The one interface between a method and the training loop."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.data.dataset import ImageDataset

DATASET_SIZE_ARG = "num_samples"  # a constructor argument filled with len(training set), never by the config


@dataclass
class StepOutput:
    """What a method hands back for one batch.

    ``metrics`` are logged as they are (e.g. a pretext task's accuracy).
    ``embedding`` (B, D) is the representation the loop watches for collapse
    (standard deviation and effective rank of the normalized rows).
    """

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    embedding: torch.Tensor | None = None


class Method(nn.Module):
    """A self-supervised method: the loss for a batch, plus a few hooks.

    A method owns all of its state (heads, EMA targets, queues, memory banks,
    prototypes) as submodules or buffers, so a checkpoint of the method is a
    checkpoint of everything. The loop knows nothing about any particular method.

    A constructor parameter named ``num_samples`` receives the training set's
    size from ``selfsup.train.build.method_from_config`` (memory banks, pseudo-labels: one row per image);
    it is never a config key.
    """

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        raise NotImplementedError

    def forward(self, batch: Batch, step: int) -> StepOutput:
        """``method(batch, step)`` is ``training_step``: DDP syncs gradients only of a forward that went through it."""
        return self.training_step(batch, step)

    def on_epoch_start(self, epoch: int, dataset: ImageDataset, device: torch.device) -> np.ndarray | None:
        """Called by the loop before the first batch of every epoch (epoch 0 included).

        Per-epoch work goes here (DeepCluster clusters the whole training set).
        Return per-image sampling weights (N,) for this epoch, or None for a
        plain shuffle. A run resumed mid-epoch does not call it: the method's
        buffers and the loader's weights come back from the checkpoint.
        """
        return None

    def fixed_lr_modules(self) -> list[nn.Module]:
        """Modules trained at the peak learning rate throughout, outside the schedule (SimSiam's predictor)."""
        return []

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) module pairs the loop updates as target = m*target + (1-m)*online."""
        return []

    def ema_momentum(self) -> float | None:
        """Base EMA momentum (raised to 1 on a cosine schedule by the loop); None without EMA targets."""
        return None

    def eval_tiling(self) -> dict | None:
        """How the invariance protocol's "tiles" reading cuts this method's tiles (``TileMeanBackbone``'s
        keyword arguments); None for methods that do not train on tiles."""
        return None
