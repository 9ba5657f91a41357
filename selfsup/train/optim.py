"""Optimizers: SGD, AdamW and LARS, with weight decay kept off biases and norm layers."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling (You et al. 2017, arXiv:1708.03888), as SimCLR/BYOL use it.

    Each parameter's update is scaled by trust * ||w|| / ||g + wd*w||. Groups with
    ``lars=False`` (biases, norm parameters) get plain SGD with momentum, as in
    SimCLR's large-batch recipe.
    """

    def __init__(
        self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, trust: float = 0.001
    ):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, trust=trust, lars=True))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        # foreach ops: a handful of fused launches per group instead of ~10 per parameter (on a GPU
        # the per-parameter loop took most of a ResNet-18 BYOL step's device time at batch 256)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            d = [p.grad for p in params]
            if group["weight_decay"]:
                d = torch._foreach_add(d, params, alpha=group["weight_decay"])
            if group["lars"]:
                w_norm, d_norm = torch.stack(torch._foreach_norm(params)), torch.stack(torch._foreach_norm(d))
                scale = torch.where(
                    (w_norm > 0) & (d_norm > 0), group["trust"] * w_norm / d_norm, torch.ones_like(w_norm)
                )
                d = torch._foreach_mul(d, list(scale.unbind()))
            for p in params:
                if "momentum_buffer" not in self.state[p]:  # zeros: the first step's buffer is d itself
                    self.state[p]["momentum_buffer"] = torch.zeros_like(p)
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, d)
            torch._foreach_add_(params, bufs, alpha=-group["lr"])


def param_groups(model: nn.Module, weight_decay: float, fixed_lr: Iterable[nn.Module] = (),
                 norm_lr_scale: float = 1.0) -> list[dict]:
    """Weights (decayed, LARS-adapted) and biases/norm parameters (neither, their learning rate times
    ``lr_scale`` = ``norm_lr_scale``); those of ``fixed_lr`` modules in groups of their own marked ``fixed_lr``
    (the loop keeps them at the peak rate, outside the schedule)."""
    fixed = {id(p) for m in fixed_lr for p in m.parameters()}
    groups: dict[tuple[bool, bool], list] = {(d, f): [] for f in (False, True) for d in (True, False)}
    for p in model.parameters():
        if p.requires_grad:
            groups[(p.ndim > 1, id(p) in fixed)].append(p)
    return [
        {
            "params": ps,
            "weight_decay": weight_decay if decay else 0.0,
            "lars": decay,
            "lr_scale": 1.0 if decay else norm_lr_scale,
            **({"fixed_lr": True} if f else {}),
        }
        for (decay, f), ps in groups.items()
        if ps or not f
    ]


def build_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float, momentum: float = 0.9,
                    fixed_lr: Iterable[nn.Module] = (), norm_lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """``lr`` is each group's rate times its ``lr_scale`` until the loop's schedule sets it (``TrainStep``)."""
    groups = param_groups(model, weight_decay, fixed_lr, norm_lr_scale)
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
    if name == "sgd":
        for g in groups:
            g.pop("lars")
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "adamw":
        for g in groups:
            g.pop("lars")
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999))
    if name == "lars":
        return LARS(groups, lr=lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}; choose from sgd, adamw, lars")
