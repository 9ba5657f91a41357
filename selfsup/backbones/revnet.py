"""RevNet-50-like reversible network, with a backward that recomputes instead of storing.

Gomez et al., "The Reversible Residual Network" (arXiv:1707.04585): split the
channels into (x1, x2) and compute ``y1 = x1 + F(x2); y2 = x2 + G(y1)``. Since
``x2 = y2 - G(y1); x1 = y1 - F(x2)``, "the activations for most layers need not
be stored in memory during backpropagation". "Revisiting" (arXiv:1901.09005)
finds RevNet-50 the best backbone for rotation prediction; its code writes the
unit as a half coupling ``(x1, x2) -> (x2, x1 + F(x2))``, so one unit here equals
two of its units ("a residual unit applied twice").

Layout (mirrors the paper's code, whole units per stage):

* stem: one conv to ``256 * width`` channels (a "random projection" that
  raises the channel count; the paper notes it cannot be skipped), plus the
  max-pool for the ImageNet stem. No BN: F and G pre-activate.
* block1..block4: (2, 2, 3, 2) reversible units, i.e. the paper's (3, 4, 6, 3)
  half couplings rounded up to whole units. F and G are v2 bottlenecks on C/2
  channels (1x1 to C/8, 3x3, 1x1 back to C/2), C = 256, 512, 1024, 2048 x width.
* between blocks: non-reversible, parameter-free downsampling: 2x2 average
  pooling and zero-padding the channels to twice as many (as in the paper, but
  with all zeros in the first half; see PoolAndDouble).
* pre_logits: BN (+ ReLU if ``last_relu``; the paper's default is without),
  global average pooling, optional linear to ``pre_logits_dim``.

Memory saving (``memory_saving=True``): each block's units run inside one
autograd Function that keeps only the block's *output*; backward walks the units
in reverse, rebuilding each unit's input from its output and recomputing F and G
with grad enabled just for that unit. Activation memory of the reversible part is
thus one tensor per block instead of every BN/conv input of every unit.

BatchNorm in the recomputation: the training-mode forward already updated the
running statistics once. Recomputing F and G in training mode would update them a
second time, so during recomputation every training-mode BN runs with its running
statistics detached (``track_running_stats`` off), normalising with the batch
statistics exactly as the forward did and leaving running_mean/var and
num_batches_tracked untouched. ``invert`` does the same.

Exactness: reconstruction subtracts what was added, so inputs come back to
rounding error, and gradients match plain backprop to rounding error (the sizes
of both, and the memory saved: docs/backbones.md#revnet-50). Use
``memory_saving=False`` where exact agreement with plain backprop matters.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.backbones.base import Backbone
from selfsup.backbones.resnet import PreLogits, Stem, check_common, make_stem, residual_branch, scaled

UNITS = (2, 2, 3, 2)


def preact_bottleneck(channels: int) -> nn.Sequential:
    """BN-ReLU then the v2 bottleneck branch, ``channels`` -> ``channels`` (mid = channels / 4)."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                         residual_branch(channels, channels, 1, bottleneck=True, final_bn=False))


class RevUnit(nn.Module):
    """(x1, x2) -> (y1, y2) = (x1 + F(x2), x2 + G(y1)), on (B, C, H, W) split along C."""

    def __init__(self, channels: int):
        super().__init__()
        if channels % 2:
            raise ValueError(f"a reversible unit needs an even channel count, got {channels}")
        self.F = preact_bottleneck(channels // 2)
        self.G = preact_bottleneck(channels // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)  # (B, C/2, H, W) each
        y1 = x1 + self.F(x2)
        y2 = x2 + self.G(y1)
        return torch.cat([y1, y2], dim=1)

    def invert(self, y: torch.Tensor) -> torch.Tensor:
        y1, y2 = y.chunk(2, dim=1)
        x2 = y2 - self.G(y1)
        x1 = y1 - self.F(x2)
        return torch.cat([x1, x2], dim=1)

    def backward_step(self, y: torch.Tensor, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list]:
        """From output y and dL/dy: the input x, dL/dx and dL/dparam (None where frozen).

        With y1 = x1 + F(x2), y2 = x2 + G(y1):
        dL/dy1 (total) = dy1 + G'(y1)^T dy2;  dL/dx1 = that;  dL/dx2 = dy2 + F'(x2)^T dL/dy1.
        """
        y1, y2 = (t.detach() for t in y.chunk(2, dim=1))
        dy1, dy2 = dy.chunk(2, dim=1)
        with torch.enable_grad():
            y1_ = y1.requires_grad_()
            g = self.G(y1_)
            gy1_grad, g_grads = _grad(g, y1_, self.G, dy2)
        dy1_total = dy1 + gy1_grad
        x2 = y2 - g.detach()
        del g, gy1_grad  # keep at most one recomputed branch alive
        with torch.enable_grad():
            x2_ = x2.requires_grad_()
            f = self.F(x2_)
            fx2_grad, f_grads = _grad(f, x2_, self.F, dy1_total)
        x1 = y1 - f.detach()
        del f
        x = torch.cat([x1, x2.detach()], dim=1)
        dx = torch.cat([dy1_total, dy2 + fx2_grad], dim=1)
        return x, dx, f_grads + g_grads


def _grad(out: torch.Tensor, inp: torch.Tensor, module: nn.Module, grad_out: torch.Tensor):
    """dL/dinp and dL/dparam for each parameter of ``module`` (None where it needs no grad)."""
    params = list(module.parameters())
    trainable = [p for p in params if p.requires_grad]
    grads = torch.autograd.grad(out, [inp, *trainable], grad_out)
    by_param = iter(grads[1:])
    return grads[0], [next(by_param) if p.requires_grad else None for p in params]


@contextlib.contextmanager
def running_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Training-mode BNs use batch statistics but do not touch their running statistics."""
    switched = [m for m in module.modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
    for m in switched:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in switched:
            m.track_running_stats = True


class _ReversibleBlock(torch.autograd.Function):
    """Runs ``block``'s units without a graph, keeps the output, rebuilds the rest in backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, block: "ReversibleBlock", *params: torch.Tensor) -> torch.Tensor:
        ctx.block = block
        ctx.autocast = (x.device.type, torch.is_autocast_enabled(x.device.type),
                        torch.get_autocast_dtype(x.device.type))
        with torch.no_grad():
            for unit in block.units:
                x = unit(x)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        (y,) = ctx.saved_tensors
        device_type, enabled, dtype = ctx.autocast
        param_grads: list = []
        with torch.autocast(device_type, dtype=dtype, enabled=enabled), running_stats_frozen(ctx.block):
            for unit in reversed(ctx.block.units):
                y, dy, grads = unit.backward_step(y, dy)
                param_grads = grads + param_grads
        return (dy, None, *param_grads)


class ReversibleBlock(nn.Module):
    """A sequence of RevUnits; stores only its output when ``memory_saving`` and grads are on."""

    def __init__(self, channels: int, n_units: int, *, memory_saving: bool = True):
        super().__init__()
        self.units = nn.ModuleList(RevUnit(channels) for _ in range(n_units))
        self.memory_saving = memory_saving

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = list(self.parameters())
        if self.memory_saving and torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            return _ReversibleBlock.apply(x, self, *params)
        for unit in self.units:
            x = unit(x)
        return x

    @torch.no_grad()
    def invert(self, y: torch.Tensor) -> torch.Tensor:
        """The block's input, rebuilt from its output (running statistics untouched)."""
        with running_stats_frozen(self):
            for unit in reversed(self.units):
                y = unit.invert(y)
        return y


class PoolAndDouble(nn.Module):
    """2x2 average pooling, then C zero channels in front: (B, C, H, W) -> (B, 2C, H/2, W/2).

    The paper pads C/2 zeros on each side. Here the zeros form the whole first
    half (x1 of the next unit), which only ever gets added to, while x2 = x feeds
    F: no BN then sees an all-zero channel. Such a channel sits exactly on the
    ReLU's kink after BN, and its rebuilt copy (zero up to rounding) falls on
    either side of it, so the memory-saving gradients would differ from plain
    backprop by whole subgradients instead of rounding.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 2, ceil_mode=True)
        return F.pad(x, (0, 0, 0, 0, x.shape[1], 0))


class RevNet(Backbone):
    """RevNet-50-like backbone with features ``stem, block1..block4, pre_logits``.

    ``width`` follows the ResNet convention (``width = k / 4`` for the paper's k):
    width 1 gives 256..2048 channels and 2048 pre-logits.
    """

    def __init__(
        self,
        *,
        width: float = 1.0,
        stem: Stem = "small",
        in_channels: int = 3,
        pre_logits_dim: int | None = None,
        last_relu: bool = False,
        memory_saving: bool = True,
    ):
        super().__init__()
        check_common(width, in_channels, pre_logits_dim)
        self.in_channels = in_channels
        channels = 2 * scaled(128, width)  # even, so each unit can split it
        stages: dict[str, nn.Module] = {"stem": make_stem(in_channels, channels, stem, post_activation=False)}
        for i, n in enumerate(UNITS):
            block = ReversibleBlock(channels, n, memory_saving=memory_saving)
            stages[f"block{i + 1}"] = block if i == 0 else nn.Sequential(PoolAndDouble(), block)
            if i < len(UNITS) - 1:
                channels *= 2
        stages["pre_logits"] = PreLogits(channels, bn=True, relu=last_relu, pre_logits_dim=pre_logits_dim)
        self.stages = nn.ModuleDict(stages)
        self.feature_names = tuple(stages)
        self.out_dim = pre_logits_dim if pre_logits_dim is not None else channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
