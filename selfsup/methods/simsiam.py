"""SimSiam: a Siamese network with a predictor and stop-gradient; no negatives, no momentum encoder.

Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021,
arXiv:2011.10566, Algorithm 1:

    z1, z2 = f(x1), f(x2)    # projections, n-by-d
    p1, p2 = h(z1), h(z2)    # predictions, n-by-d
    L = D(p1, z2)/2 + D(p2, z1)/2
    D(p, z) = -cos(p, z.detach())   # stop gradient

"The projection MLP (in f) has BN applied to each fully-connected (fc) layer,
including its output fc. Its output fc has no ReLU. The hidden fc is 2048-d.
This MLP has 3 layers. The prediction MLP (h) has BN applied to its hidden fc
layers. Its output fc does not have BN or ReLU. The MLP has 2 layers ... the
dimension of h's hidden layer is 512" (Sec. 4). "stop-gradient ... is essential":
without it the output collapses to a constant. The predictor is trained at a
fixed rate: "if h is fixed ... [with] a constant lr (without decay) ... even
better results than the reference (68.1 vs. 67.7)" (Sec. 4.2, Table 1), the
official code's --fix-pred-lr.
"""
from __future__ import annotations

from torch import nn

from selfsup.augment import ViewAugment
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.losses import negative_cosine
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import mlp


class SimSiam(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        proj_layers: int = 3,  # the paper's CIFAR setting uses 2
        proj_hidden_dim: int = 2048,
        dim: int = 2048,
        pred_hidden_dim: int = 512,
        fix_predictor_lr: bool = True,  # the predictor keeps the peak lr; the rest follows the schedule
    ):
        super().__init__(backbone)
        self.augment = augment
        self.projector = mlp(backbone.out_dim, proj_hidden_dim, dim, num_layers=proj_layers, last_bn=True)
        self.predictor = mlp(dim, pred_hidden_dim, dim)
        self.fix_predictor_lr = fix_predictor_lr

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        x1, x2 = self.augment.views(batch.images, 2)
        h1, h2 = self.backbone(x1), self.backbone(x2)  # (B, D)
        z1, z2 = self.projector(h1), self.projector(h2)  # (B, dim) projections
        p1, p2 = self.predictor(z1), self.predictor(z2)  # (B, dim) predictions
        loss = negative_cosine(p1, z2) / 2 + negative_cosine(p2, z1) / 2  # z detached inside: stop-gradient
        return StepOutput(loss, embedding=h1.detach())

    def fixed_lr_modules(self) -> list[nn.Module]:
        return [self.predictor] if self.fix_predictor_lr else []
