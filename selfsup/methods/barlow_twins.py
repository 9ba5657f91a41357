"""Barlow Twins: make the cross-correlation of the two views' embeddings close to the identity.

Zbontar, Jing, Misra, LeCun & Deny, "Barlow Twins: Self-Supervised Learning via
Redundancy Reduction", ICML 2021, arXiv:2103.03230. "The projector network has
three linear layers, each with 8192 output units. The first two layers of the
projector are followed by a batch normalization layer and rectified linear
units" (Sec. 2); lambda = 5e-3. No predictor, no stop-gradient, no momentum
encoder, no negatives: the loss itself prevents collapse.
"""
from __future__ import annotations

from selfsup.augment import ViewAugment
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.losses import barlow_twins_loss
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import mlp


class BarlowTwins(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        lambd: float = 5e-3,  # weight of the redundancy-reduction (off-diagonal) term
        proj_hidden_dim: int = 8192,
        proj_dim: int = 8192,
    ):
        super().__init__(backbone)
        self.augment = augment
        self.lambd = lambd
        self.projector = mlp(backbone.out_dim, proj_hidden_dim, proj_dim, num_layers=3)

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        y1, y2 = self.augment.views(batch.images, 2)
        h1 = self.backbone(y1)  # (B, D)
        z1, z2 = self.projector(h1), self.projector(self.backbone(y2))  # (B, proj_dim)
        loss = barlow_twins_loss(z1, z2, lambd=self.lambd)  # standardises each dimension over the batch
        return StepOutput(loss, embedding=h1.detach())
