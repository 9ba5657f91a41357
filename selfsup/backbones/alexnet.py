"""AlexNet as in the early pretext-task papers (context, jigsaw, colorization, rotation).

Krizhevsky et al. 2012: conv1 96 11x11/4, conv2 256 5x5, conv3 384, conv4 384,
conv5 256 (3x3), max-pools 3x3/2 after conv1, conv2 and conv5, fc6 and fc7 of
4096. The two-GPU channel groups of the original are dropped (a hardware split,
not a modelling choice), as in most re-implementations.

``batch_norm=True`` (default) puts BN after every conv and fc and drops dropout,
as RotNet (Gidaris et al., arXiv:1803.07728) and the jigsaw follow-ups do to
train AlexNet on pretext tasks; ``batch_norm=False`` gives the original: conv
biases, local response normalisation after conv1 and conv2, dropout 0.5 before
fc6 and fc7.

Features: ``conv1..conv5`` (each conv's ReLU output, after its max-pool where it
has one), ``fc6``, ``fc7``, ``pre_logits`` (= fc7, or its linear map to
``pre_logits_dim``).

Stems: "imagenet" is the 11x11 stride-4 conv1 for 224 px; "small" (28-64 px)
uses a 5x5 stride-1 conv1. Pools use ``ceil_mode`` so 28 px still reaches conv5,
and fc6 sees an adaptive average pool of conv5 to ``fc_grid`` x ``fc_grid``
(default 1, global; ``fc_grid=6`` at 224 px is the original 6x6 fc6).
"""
from __future__ import annotations

from torch import nn

from selfsup.backbones.base import Backbone
from selfsup.backbones.resnet import Stem, check_common, scaled
from selfsup.backbones.vgg import fc6_input, fc_layer


def conv_layer(cin: int, cout: int, kernel: int, stride: int, *, batch_norm: bool, lrn: bool = False,
               pool: bool = False) -> nn.Sequential:
    padding = 2 if kernel == 11 else kernel // 2  # 224 px -> 55 after the 11x11/4 conv, as in the original
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    if lrn and not batch_norm:
        layers.append(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
    if pool:
        layers.append(nn.MaxPool2d(3, stride=2, ceil_mode=True))
    return nn.Sequential(*layers)


class AlexNet(Backbone):
    def __init__(
        self,
        *,
        width: float = 1.0,
        stem: Stem = "small",
        in_channels: int = 3,
        pre_logits_dim: int | None = None,
        batch_norm: bool = True,
        fc_grid: int = 1,
    ):
        super().__init__()
        check_common(width, in_channels, pre_logits_dim)
        self.in_channels = in_channels
        c1, c2, c3, c4, c5 = (scaled(c, width) for c in (96, 256, 384, 384, 256))
        kernel1, stride1 = (11, 4) if stem == "imagenet" else (5, 1)
        bn = batch_norm
        stages: dict[str, nn.Module] = {
            "conv1": conv_layer(in_channels, c1, kernel1, stride1, batch_norm=bn, lrn=True, pool=True),
            "conv2": conv_layer(c1, c2, 5, 1, batch_norm=bn, lrn=True, pool=True),
            "conv3": conv_layer(c2, c3, 3, 1, batch_norm=bn),
            "conv4": conv_layer(c3, c4, 3, 1, batch_norm=bn),
            "conv5": conv_layer(c4, c5, 3, 1, batch_norm=bn, pool=True),
        }
        fc_dim = scaled(4096, width)
        pool, flat = fc6_input(c5, fc_grid)
        stages["fc6"] = nn.Sequential(pool, fc_layer(flat, fc_dim, batch_norm=bn, dropout=0.5))
        stages["fc7"] = fc_layer(fc_dim, fc_dim, batch_norm=bn, dropout=0.5)
        stages["pre_logits"] = nn.Identity() if pre_logits_dim is None else nn.Linear(fc_dim, pre_logits_dim)
        self.stages = nn.ModuleDict(stages)
        self.feature_names = tuple(stages)
        self.out_dim = fc_dim if pre_logits_dim is None else pre_logits_dim
