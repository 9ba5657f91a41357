"""Backbones with a known, fixed representation, to pin what the label-using protocols do with it."""
import torch
from torch import nn


class Pixels(nn.Module):
    """A 'backbone' whose pre-logits are the flattened first channel: a known, fixed representation."""

    out_dim = 28 * 28

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))  # gives the module a device and dtype

    def forward(self, x):
        return x[:, 0].flatten(1) + 0 * self.dummy


class MeanColour(Pixels):
    """Pre-logits that ignore where pixels are: invariant to rotations and tile shuffles."""

    out_dim = 3

    def forward(self, x):
        return x.mean(dim=(2, 3)) + 0 * self.dummy
