"""Exemplar: every image is its own class, its heavily augmented copies the class's samples.

Dosovitskiy, Springenberg, Riedmiller & Brox, "Discriminative Unsupervised
Feature Learning with Convolutional Neural Networks", NIPS 2014,
arXiv:1406.6909: "each class is formed by applying a variety of transformations
to a randomly sampled 'seed' image patch". "Revisiting Self-Supervised Visual
Representation Learning" (arXiv:1901.09005, Sec. 3) replaces the classifier over
all images by "a triplet loss" over a batch holding 8 augmented copies of each
image, which scales to any dataset size; here with batch-hard mining (Hermans et
al., arXiv:1703.07737) on L2-normalised embeddings.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.losses.triplet import batch_hard_triplet
from selfsup.methods.base import Method, StepOutput


class Exemplar(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        n_views: int = 8,  # "Revisiting": 8 copies of every image per batch
        embed_dim: int = 1000,  # "Revisiting": a 1000-dimensional embedding on the pre-logits
        margin: float = 0.5,
    ):
        super().__init__(backbone)
        if isinstance(n_views, bool) or not isinstance(n_views, int) or n_views < 2:
            raise ValueError(f"n_views must be an int >= 2 (an anchor needs a positive), got {n_views!r}")
        self.augment = augment
        self.n_views, self.margin = n_views, margin
        self.head = nn.Linear(backbone.out_dim, embed_dim)

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        b = len(batch)
        views = torch.cat(self.augment.views(batch.images, self.n_views))  # (V*B, 3, H, W), view-major
        h = self.backbone(views)  # (V*B, D)
        z = F.normalize(self.head(h).float(), dim=1)  # (V*B, E)
        labels = torch.arange(b, device=z.device).repeat(self.n_views)  # (V*B,): the image each view came from
        loss = batch_hard_triplet(z, labels, margin=self.margin)
        with torch.no_grad():  # pretext accuracy: is each view's nearest other view a copy of the same image?
            sim = z @ z.T
            sim.fill_diagonal_(float("-inf"))
            acc = (labels[sim.argmax(1)] == labels).float().mean()
        return StepOutput(loss, {"pretext_acc": acc.item()}, embedding=h[:b].detach())
