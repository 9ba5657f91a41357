"""Projection and prediction heads."""
from __future__ import annotations

from torch import nn


def mlp(in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, last_bn: bool = False) -> nn.Sequential:
    """Linear-BN-ReLU blocks then a linear output, the head shape of SimCLR, BYOL and most successors.

    SimCLR (arXiv:2002.05709, Sec. 2.1): "we use a MLP with one hidden layer to obtain
    z = g(h) = W2 ReLU(W1 h)"; BN in the hidden layer as in its released code.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers - 1):
        layers += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
        dim = hidden_dim
    layers.append(nn.Linear(dim, out_dim, bias=not last_bn))
    if last_bn:
        layers.append(nn.BatchNorm1d(out_dim, affine=False))
    return nn.Sequential(*layers)


def linear_or_mlp(in_dim: int, out_dim: int, hidden_dim: int | None = None) -> nn.Module:
    """A paper's linear projection (NPID, PIRL), or with ``hidden_dim`` a Linear-BN-ReLU-Linear ``mlp``."""
    return nn.Linear(in_dim, out_dim) if hidden_dim is None else mlp(in_dim, hidden_dim, out_dim)
