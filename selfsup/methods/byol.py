"""BYOL: an online network predicts a slowly moving target network's projection of another view.

Grill et al., "Bootstrap your own latent: A new approach to self-supervised
learning", NeurIPS 2020, arXiv:2006.07733. "the online network ... is composed
of three stages: an encoder f_theta, a projector g_theta and a predictor
q_theta"; the target network (encoder + projector) is "an exponential moving
average of the online parameters" with "tau_base = 0.996" raised to 1 on a
cosine schedule (the loop does this). The loss is "symmetrize[d] ... by
separately feeding v' to the online network and v to the target network".
Projector and predictor: "a multi-layer perceptron (MLP) ... a linear layer with
output size 4096 followed by batch normalization, rectified linear units (ReLU),
and a final linear layer with output dimension 256".

Deviation: both views use the same augmentation (the paper's blur/solarisation
asymmetry is a config choice of ``augment``, one pipeline here).
"""
from __future__ import annotations

import torch
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.losses import normalized_mse
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import mlp, momentum_copy


class BYOL(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        momentum: float = 0.996,  # tau_base; the loop raises it to 1 over the run
        proj_hidden_dim: int = 4096,
        proj_dim: int = 256,
        pred_hidden_dim: int = 4096,
    ):
        super().__init__(backbone)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum} must be in [0, 1)")
        self.augment = augment
        self.momentum = momentum
        self.projector = mlp(backbone.out_dim, proj_hidden_dim, proj_dim)
        self.predictor = mlp(proj_dim, pred_hidden_dim, proj_dim)
        self.target_backbone = momentum_copy(backbone)
        self.target_projector = momentum_copy(self.projector)

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        v1, v2 = self.augment.views(batch.images, 2)
        h1, h2 = self.backbone(v1), self.backbone(v2)  # (B, D)
        p1, p2 = self.predictor(self.projector(h1)), self.predictor(self.projector(h2))  # (B, proj_dim) predictions
        with torch.no_grad():  # stop-gradient: the target moves only by EMA
            z1, z2 = self.target_projector(self.target_backbone(v1)), self.target_projector(self.target_backbone(v2))
        loss = normalized_mse(p1, z2) + normalized_mse(p2, z1)  # L + L~ of the paper
        return StepOutput(loss, embedding=h1.detach())

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.target_backbone), (self.projector, self.target_projector)]

    def ema_momentum(self) -> float:
        return self.momentum
