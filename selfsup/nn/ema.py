"""Momentum (EMA) targets: a frozen copy that the training loop moves towards the online network.

The method lists (online, target) pairs in ``Method.ema_pairs()``; the loop
updates target = m * target + (1 - m) * online after each optimiser step, with m
on BYOL's cosine schedule from the method's base momentum to 1.
"""
from __future__ import annotations

import copy

from torch import nn


def momentum_copy(online: nn.Module) -> nn.Module:
    """A copy of ``online`` with the same initial weights ("initialized the same", MoCo Alg. 1) and no gradients.

    Its parameters are excluded from the optimiser (which only takes parameters
    that require grad) and change only through the EMA update.
    """
    target = copy.deepcopy(online)
    for p in target.parameters():
        p.requires_grad_(False)
    return target
