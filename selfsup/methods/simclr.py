"""SimCLR: two augmented views of each image, NT-Xent over the batch.

Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning
of Visual Representations", ICML 2020, arXiv:2002.05709. "A nonlinear
projection head improves the representation quality of the layer before it"
(Sec. 4.2): the loss sees z = g(h), evaluation uses h, the pre-logits.
"""
from __future__ import annotations

import torch

from selfsup.augment import ViewAugment
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.losses import nt_xent
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import mlp


class SimCLR(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        temperature: float = 0.5,  # the paper's CIFAR-10 setting (Appendix B.9)
        proj_hidden_dim: int = 2048,
        proj_dim: int = 128,
    ):
        super().__init__(backbone)
        self.augment = augment
        self.temperature = temperature
        self.projector = mlp(backbone.out_dim, proj_hidden_dim, proj_dim)

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        b = len(batch)
        views = torch.cat(self.augment.views(batch.images, 2))  # (2B, 3, H, W): view 1 of every image, then view 2
        h = self.backbone(views)  # (2B, D)
        z = self.projector(h)  # (2B, proj_dim)
        loss = nt_xent(z[:b], z[b:], temperature=self.temperature)
        return StepOutput(loss, embedding=h[:b].detach())
