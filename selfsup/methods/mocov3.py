"""MoCo v3: no queue; a predictor on the query branch and a symmetric in-batch contrastive loss.

Chen, Xie & He, "An Empirical Study of Training Self-Supervised Vision
Transformers", ICCV 2021, arXiv:2104.02057, Algorithm 1:

    q1, q2 = f_q(x1), f_q(x2)        # queries: backbone + projector + predictor
    k1, k2 = f_k(x1), f_k(x2)        # keys: momentum backbone + projector
    loss = ctr(q1, k2) + ctr(q2, k1)  # symmetrized
    ctr(q, k) = CrossEntropyLoss(q @ k.t() / t, arange(N)) * 2 * t

"The projection head is a 3-layer MLP ... The prediction head is a 2-layer MLP.
The hidden layers of both MLPs are 4096-d ... the output layers of both MLPs are
256-d ... all layers in both MLPs have BN" (Sec. 4, following SimCLR the last
projector BN has no affine parameters; the released ResNet code ends the
predictor without BN, which we follow). tau = 1.0 is the paper's ResNet setting
(0.2 is for ViTs); momentum 0.99 raised to 1 on a cosine schedule, as its code.
"""
from __future__ import annotations

import torch
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.losses import info_nce_in_batch
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import mlp, momentum_copy


class MoCoV3(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        temperature: float = 1.0,
        momentum: float = 0.99,
        proj_layers: int = 3,
        hidden_dim: int = 4096,
        dim: int = 256,
    ):
        super().__init__(backbone)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum} must be in [0, 1)")
        self.augment = augment
        self.temperature = temperature
        self.momentum = momentum
        self.projector = mlp(backbone.out_dim, hidden_dim, dim, num_layers=proj_layers, last_bn=True)
        self.predictor = mlp(dim, hidden_dim, dim, num_layers=2)
        self.target_backbone = momentum_copy(backbone)
        self.target_projector = momentum_copy(self.projector)

    def ctr(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return info_nce_in_batch(q, k, temperature=self.temperature) * 2 * self.temperature

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        x1, x2 = self.augment.views(batch.images, 2)
        h1, h2 = self.backbone(x1), self.backbone(x2)  # (B, D) each; one BN batch per view, as the paper's code
        q1, q2 = self.predictor(self.projector(h1)), self.predictor(self.projector(h2))  # (B, dim)
        with torch.no_grad():
            k1, k2 = self.target_projector(self.target_backbone(x1)), self.target_projector(self.target_backbone(x2))
        loss = self.ctr(q1, k2) + self.ctr(q2, k1)
        return StepOutput(loss, embedding=h1.detach())

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.target_backbone), (self.projector, self.target_projector)]

    def ema_momentum(self) -> float:
        return self.momentum
