"""VICReg: variance, invariance and covariance regularisation of two views' embeddings.

Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization
for Self-Supervised Learning", ICLR 2022, arXiv:2105.04906. "the variance term
... forces the embedding vectors of samples within a batch to be different, the
invariance term ... attracts [the two views of an image] and the covariance term
decorrelates the variables of each embedding" (Sec. 3). The expander has "3
fully-connected layers of size 8192 ... the first two layers are followed by a
batch normalization layer and ReLU"; lambda = mu = 25, nu = 1, gamma = 1, eps = 1e-4.
"""
from __future__ import annotations

from selfsup.augment import ViewAugment
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.losses import vicreg_loss
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import mlp


class VICReg(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        sim_coeff: float = 25.0,  # lambda, invariance
        std_coeff: float = 25.0,  # mu, variance
        cov_coeff: float = 1.0,  # nu, covariance
        gamma: float = 1.0,  # target standard deviation of each dimension
        eps: float = 1e-4,
        proj_hidden_dim: int = 8192,
        proj_dim: int = 8192,
    ):
        super().__init__(backbone)
        self.augment = augment
        self.coeffs = dict(sim_coeff=sim_coeff, std_coeff=std_coeff, cov_coeff=cov_coeff, gamma=gamma, eps=eps)
        self.expander = mlp(backbone.out_dim, proj_hidden_dim, proj_dim, num_layers=3)

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        x1, x2 = self.augment.views(batch.images, 2)
        h1 = self.backbone(x1)  # (B, D) representations
        z1, z2 = self.expander(h1), self.expander(self.backbone(x2))  # (B, proj_dim) embeddings
        loss, terms = vicreg_loss(z1, z2, **self.coeffs)
        return StepOutput(loss, terms, embedding=h1.detach())
