"""RotNet: predict which of four rotations was applied.

Gidaris, Singh & Komodakis, "Unsupervised Representation Learning by Predicting
Image Rotations", ICLR 2018, arXiv:1803.07728. The paper found it best to feed
"all four rotated copies of an image simultaneously" in the same batch (Sec. 3.2),
so every image appears at 0, 90, 180 and 270 degrees.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.methods.base import Method, StepOutput


def rotate_all(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> the 4B rotated images and their labels 0..3 (multiples of 90 degrees)."""
    views = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])  # (4B, C, H, W)
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])  # (4B,)
    return views, labels


class Rotation(Method):
    def __init__(self, backbone: Backbone, augment: ViewAugment, hidden_dim: int | None = None):
        """Args:
        hidden_dim: None gives a linear head on the pre-logits (as in "Revisiting");
            an int gives a one-hidden-layer MLP head.
        """
        super().__init__(backbone)
        self.augment = augment
        d = backbone.out_dim
        self.head = nn.Linear(d, 4) if hidden_dim is None else nn.Sequential(
            nn.Linear(d, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, 4)
        )

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        x = self.augment(batch.images)  # (B, 3, H, W); square crops, so rotations keep the shape
        views, labels = rotate_all(x)
        feats = self.backbone(views)  # (4B, D)
        logits = self.head(feats).float()
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        return StepOutput(loss, {"pretext_acc": acc.item()}, embedding=feats[: x.shape[0]].detach())
