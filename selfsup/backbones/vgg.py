"""VGG-19 with batch norm, as used in "Revisiting" (arXiv:1901.09005).

Simonyan & Zisserman, arXiv:1409.1556, configuration E: sixteen 3x3 convs in
five blocks (2, 2, 4, 4, 4) of 64, 128, 256, 512, 512 channels, each block
closed by a 2x2 max-pool, then fc6 and fc7 of 4096. As in the paper's code, every
conv and fc is followed by BN then ReLU, and "because of that, we are not using
Dropout in the final FC layers".

Features: ``conv1..conv5`` (each block's output after its max-pool), ``fc6``,
``fc7``, ``pre_logits`` (= fc7, or a linear map of it to ``pre_logits_dim``).

Input size: pools use ``ceil_mode`` so 28 px still reaches conv5 (28 -> 14 -> 7
-> 4 -> 2 -> 1), and fc6 sees an adaptive average pool of conv5 to ``fc_grid`` x
``fc_grid``. The default ``fc_grid=1`` (global pooling) serves every size with one
set of weights; ``fc_grid=7`` at 224 px is the original fc6 over the 7x7 map
(49x more fc6 parameters).

``width`` scales every channel count and the fc size (width 1 = the paper's
``filters_factor=8``, i.e. the original VGG-19).
"""
from __future__ import annotations

from torch import nn

from selfsup.backbones.base import Backbone
from selfsup.backbones.gemm_conv import Conv2d
from selfsup.backbones.resnet import check_common, scaled
from selfsup.registry import ConfigError

BLOCKS = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> list[nn.Module]:
    return [Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),  # small bf16 maps: one product
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def fc_layer(cin: int, cout: int, *, batch_norm: bool, dropout: float = 0.0) -> nn.Sequential:
    """Linear -> BN -> ReLU, or (without BN) dropout -> linear -> ReLU as in the original nets."""
    if batch_norm:
        return nn.Sequential(nn.Linear(cin, cout, bias=False), nn.BatchNorm1d(cout), nn.ReLU(inplace=True))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, cout), nn.ReLU(inplace=True))


def fc6_input(channels: int, fc_grid: int) -> tuple[nn.Sequential, int]:
    """Adaptive average pool to fc_grid x fc_grid and flatten; returns the layers and the flat size."""
    if fc_grid < 1:
        raise ConfigError(f"option 'fc_grid'={fc_grid!r} must be >= 1")
    return nn.Sequential(nn.AdaptiveAvgPool2d(fc_grid), nn.Flatten(1)), channels * fc_grid * fc_grid


class VGG19(Backbone):
    def __init__(
        self,
        *,
        width: float = 1.0,
        in_channels: int = 3,
        pre_logits_dim: int | None = None,
        fc_grid: int = 1,
    ):
        super().__init__()
        check_common(width, in_channels, pre_logits_dim)
        self.in_channels = in_channels
        stages: dict[str, nn.Module] = {}
        cin = in_channels
        for i, (channels, n_convs) in enumerate(BLOCKS):
            cout = scaled(channels, width)
            layers: list[nn.Module] = []
            for _ in range(n_convs):
                layers += conv_bn_relu(cin, cout)
                cin = cout
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            stages[f"conv{i + 1}"] = nn.Sequential(*layers)
        fc_dim = scaled(4096, width)
        pool, flat = fc6_input(cin, fc_grid)
        stages["fc6"] = nn.Sequential(pool, fc_layer(flat, fc_dim, batch_norm=True))
        stages["fc7"] = fc_layer(fc_dim, fc_dim, batch_norm=True)
        stages["pre_logits"] = nn.Identity() if pre_logits_dim is None else nn.Linear(fc_dim, pre_logits_dim)
        self.stages = nn.ModuleDict(stages)
        self.feature_names = tuple(stages)
        self.out_dim = fc_dim if pre_logits_dim is None else pre_logits_dim
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
