"""ResNet v1 (post-activation) and v2 (pre-activation), widened as in "Revisiting".

Kolesnikov, Zhai & Beyer, "Revisiting Self-Supervised Visual Representation
Learning" (arXiv:1901.09005) find that "the architecture choice matters" and
that "increasing the number of filters ... consistently improves the
representation", so the width is a free float here.

Width convention: ``width=1.0`` is the standard (torchvision-sized) ResNet, whose
ResNet-50 has 2048 pre-logits. The paper's widening factor k in {4, 8, 12, 16}
counts 16*k filters in the first convolution, so k=4 is the standard net and
``width = k / 4`` (k=16 -> width=4 -> 8192 pre-logits for ResNet-50). Channels
are ``max(1, round(c * width))``, so fractional widths (0.125 for CPU tests) work.

v1: conv-BN(-ReLU) everywhere, ReLU after each addition (He et al., 2015).
v2: BN-ReLU before each conv, a final BN-ReLU before pooling (He et al., 2016,
arXiv:1603.05027). As in the paper's code, the stride of a bottleneck sits on its
3x3 conv, not on the first 1x1 ("which results in information loss").
``last_relu=False`` drops the ReLU right before global pooling (v2: after the final
BN; v1: after the last unit's addition), so pre-logits can be negative; the paper
reports this helps linear evaluation for some pretext tasks.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from selfsup.backbones.base import Backbone
from selfsup.backbones.gemm_conv import Conv2d
from selfsup.registry import ConfigError

Stem = Literal["small", "imagenet"]

# Units per stage and whether units are bottlenecks, per depth.
DEPTHS: dict[int, tuple[tuple[int, int, int, int], bool]] = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    50: ((3, 4, 6, 3), True),
    101: ((3, 4, 23, 3), True),
}


def scaled(channels: float, width: float) -> int:
    """``channels * width`` rounded to an int of at least 1."""
    return max(1, round(channels * width))


def conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)  # small bf16 maps: one product


def residual_branch(cin: int, cout: int, stride: int, *, bottleneck: bool, final_bn: bool) -> nn.Sequential:
    """The residual function: conv-BN-ReLU ... conv, plus a last BN when ``final_bn`` (v1).

    For v2 the unit applies the leading BN-ReLU itself (the projection shortcut
    shares it), so the branch starts at a conv in both versions.
    """
    if bottleneck:
        mid = max(1, cout // 4)
        layers = [conv(cin, mid, 1), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                  conv(mid, mid, 3, stride), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                  conv(mid, cout, 1)]
    else:
        layers = [conv(cin, cout, 3, stride), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                  conv(cout, cout, 3)]
    if final_bn:
        layers.append(nn.BatchNorm2d(cout))
    return nn.Sequential(*layers)


class UnitV1(nn.Module):
    """relu(branch(x) + shortcut(x)), BN after every conv; ``relu=False`` skips the last ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, *, bottleneck: bool, relu: bool = True):
        super().__init__()
        self.branch = residual_branch(cin, cout, stride, bottleneck=bottleneck, final_bn=True)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout
                         else nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout)))
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.branch(x) + self.shortcut(x))

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.branch[-1].weight)  # last BN's gamma


class UnitV2(nn.Module):
    """x' = relu(bn(x)); branch(x') + shortcut, the projection (if any) applied to x'."""

    def __init__(self, cin: int, cout: int, stride: int, *, bottleneck: bool):
        super().__init__()
        self.preact = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=False))
        self.branch = residual_branch(cin, cout, stride, bottleneck=bottleneck, final_bn=False)
        self.projection = None if stride == 1 and cin == cout else conv(cin, cout, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.preact(x)
        shortcut = x if self.projection is None else self.projection(a)
        return self.branch(a) + shortcut

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.branch[-1].weight)  # last conv: the unit starts as the identity


def make_stem(cin: int, cout: int, stem: Stem, *, post_activation: bool) -> nn.Sequential:
    """"small" (28-64 px): 3x3 conv, stride 1. "imagenet": 7x7 stride 2, then 3x3 max-pool stride 2.

    v1 normalises and activates the stem; v2 leaves that to the first unit's pre-activation.
    """
    layers: list[nn.Module] = [conv(cin, cout, 3) if stem == "small" else conv(cin, cout, 7, 2)]
    if post_activation:
        layers += [nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    if stem == "imagenet":
        layers.append(nn.MaxPool2d(3, stride=2, padding=1))
    return nn.Sequential(*layers)


class PreLogits(nn.Sequential):
    """[BN, ReLU] -> global average pool -> (B, C) [-> linear to ``pre_logits_dim``]."""

    def __init__(self, channels: int, *, bn: bool, relu: bool, pre_logits_dim: int | None):
        layers: list[nn.Module] = []
        if bn:
            layers.append(nn.BatchNorm2d(channels))
        if relu:
            layers.append(nn.ReLU(inplace=False))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
        if pre_logits_dim is not None:
            layers.append(nn.Linear(channels, pre_logits_dim))
        super().__init__(*layers)


def check_common(width: float, in_channels: int, pre_logits_dim: int | None) -> None:
    """Errors that the registry's type check cannot see (value ranges)."""
    if not width > 0:
        raise ConfigError(f"option 'width'={width!r} must be > 0")
    if in_channels < 1:
        raise ConfigError(f"option 'in_channels'={in_channels!r} must be >= 1")
    if pre_logits_dim is not None and pre_logits_dim < 1:
        raise ConfigError(f"option 'pre_logits_dim'={pre_logits_dim!r} must be >= 1 or None")


class ResNet(Backbone):
    """ResNet with features ``stem, block1..block4, pre_logits``.

    ``pre_logits`` is the global-average-pooled block4 output (after v2's final
    BN[-ReLU]), or its linear map to ``pre_logits_dim`` when given: the paper sets
    the representation size independently of the width this way.

    ``zero_init_residual`` defaults to False, as in the paper's code and
    torchvision; True zero-inits each unit's last BN gamma (v1) or last conv (v2)
    so every unit starts as the identity (Goyal et al., arXiv:1706.02677).
    """

    def __init__(
        self,
        depth: Literal[18, 34, 50, 101] = 50,
        version: Literal["v1", "v2"] = "v2",
        *,
        last_relu: bool = True,
        width: float = 1.0,
        stem: Stem = "small",
        in_channels: int = 3,
        pre_logits_dim: int | None = None,
        zero_init_residual: bool = False,
    ):
        super().__init__()
        check_common(width, in_channels, pre_logits_dim)
        units, bottleneck = DEPTHS[depth]
        expansion = 4 if bottleneck else 1
        self.in_channels = in_channels
        v1 = version == "v1"

        stem_channels = scaled(64, width)
        stages: dict[str, nn.Module] = {"stem": make_stem(in_channels, stem_channels, stem, post_activation=v1)}
        cin = stem_channels
        for i, n in enumerate(units):
            cout = expansion * scaled(64 * 2**i, width)
            blocks: list[nn.Module] = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                if v1:
                    is_last = i == len(units) - 1 and j == n - 1
                    blocks.append(UnitV1(cin, cout, stride, bottleneck=bottleneck, relu=last_relu or not is_last))
                else:
                    blocks.append(UnitV2(cin, cout, stride, bottleneck=bottleneck))
                cin = cout
            stages[f"block{i + 1}"] = nn.Sequential(*blocks)
        stages["pre_logits"] = PreLogits(cin, bn=not v1, relu=(not v1) and last_relu, pre_logits_dim=pre_logits_dim)
        self.stages = nn.ModuleDict(stages)
        self.feature_names = tuple(stages)
        self.out_dim = pre_logits_dim if pre_logits_dim is not None else cin

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (UnitV1, UnitV2)):
                    m.zero_init_last()
