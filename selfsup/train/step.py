"""One training step, the same for the loop, ``selfsup speed`` and a grid's minute budgets.

A step sets the learning rate of its schedule, runs the method's loss under
autocast, back-propagates, clips, steps the optimizer and updates the EMA
targets the method declares. Timing anything else would time another step.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch import nn

from selfsup.config import TrainConfig
from selfsup.data import Batch, BatchLoader, ImageDataset
from selfsup.data.shards import ShardDataset, ShardLoader
from selfsup.methods import Method, StepOutput
from selfsup.precision import Precision, autocast, autocast_dtype
from selfsup.registry import RunStopped
from selfsup.schedules import ema_momentum, warmup_cosine
from selfsup.train.optim import build_optimizer


class NonFiniteLossError(RunStopped):
    """The loss (or a weight, before a checkpoint) became NaN or infinite; the last good checkpoint is kept."""


class TrainStep:
    """``step(batch, i)``: the i-th optimisation step of ``method`` under the schedules of ``train``.

    Args:
        method: the method, on its device.
        train: the run's ``train`` section (optimizer, lr schedule, clipping, precision).
        model: what the forward goes through, when not the method itself (its DDP wrapper).
        precision: overrides ``train.precision`` (``selfsup speed --precision``).
    """

    def __init__(self, method: Method, train: TrainConfig, model: nn.Module | None = None,
                 precision: Precision | None = None):
        self.method, self.model, self.train = method, model or method, train
        device = next(method.parameters()).device
        self.amp_dtype = autocast_dtype(precision or train.precision, device)
        self.optimizer = build_optimizer(train.optimizer, method, train.lr, train.weight_decay, train.momentum,
                                         method.fixed_lr_modules(), train.norm_lr_scale)
        self.lrs = warmup_cosine(train.lr, train.steps, train.warmup_steps, final=train.min_lr)  # (steps,)
        base = method.ema_momentum()
        self.ema = ema_momentum(base, train.steps) if base is not None else None  # (steps,) or None
        self.pairs = method.ema_pairs()

    def __call__(self, batch: Batch, step: int) -> StepOutput:
        """The returned loss is detached and float32; raises NonFiniteLossError before any update."""
        i = min(step, self.train.steps - 1)  # steps past the schedule (speed's repeats) keep its last values
        for group in self.optimizer.param_groups:
            peak_or_scheduled = self.train.lr if group.get("fixed_lr") else float(self.lrs[i])  # SimSiam's predictor
            group["lr"] = peak_or_scheduled * group.get("lr_scale", 1.0)
        with autocast(batch.images.device, self.amp_dtype):
            out = self.model(batch, step)  # forward = training_step, through the DDP wrapper when there is one
        loss = out.loss.float()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"loss is {loss.item()} at step {step}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.train.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train.grad_clip)
        self.optimizer.step()
        if self.ema is not None:
            ema_update(self.pairs, float(self.ema[i]))
        out.loss = loss.detach()
        return out

    def lr(self, step: int) -> float:
        return float(self.lrs[min(step, self.train.steps - 1)])


def epoch_batches(loader: BatchLoader | ShardLoader, method: Method, dataset: ImageDataset | ShardDataset,
                  device: torch.device) -> Iterator[Batch]:
    """The loader's batches without end, each epoch opened by ``method.on_epoch_start`` (DeepCluster clusters
    the data there and returns sampling weights). A loader resumed mid-epoch goes on without the hook."""
    while True:
        if loader.position == 0:
            weights: np.ndarray | None = method.on_epoch_start(loader.epoch, dataset, device)
            loader.set_weights(weights)
            method.train()  # the hook may have extracted features in eval mode
        yield from loader


@torch.no_grad()
def ema_update(pairs: list[tuple[nn.Module, nn.Module]], momentum: float) -> None:
    """target = m * target + (1 - m) * online for every (online, target) pair; buffers are copied."""
    # foreach: one fused launch per dtype instead of one per tensor (on a GPU, ~250 launches for a ResNet-18 pair)
    for online, target in pairs:
        params, buffers = list(target.parameters()), list(target.buffers())
        if params:
            torch._foreach_lerp_(params, list(online.parameters()), 1.0 - momentum)
        if buffers:  # a projector without BN has none
            torch._foreach_copy_(buffers, list(online.buffers()))
