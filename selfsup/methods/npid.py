"""NPID: instance discrimination, each image its own class, against a memory bank.

Wu, Xiong, Yu & Lin, "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination", CVPR 2018, arXiv:1805.01978. The backbone's features go through
a linear layer to a 128-d unit vector v = f(x); "a non-parametric softmax"
compares it with every stored image vector at temperature 0.07, trained with NCE
against 4096 noise images drawn from the memory bank (Sec. 3.1-3.2, 4). After the
step, image i's stored vector moves towards v with momentum 0.5.

``hidden_dim`` replaces the linear layer by a Linear-BN-ReLU-Linear head (as
MoCo v2's "MLP head"): not the paper's, but short runs learn only with it
(npid.yaml gives the figures).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from selfsup.augment import ViewAugment
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.losses.nce import estimate_log_z, memory_info_nce, nce_loss
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import linear_or_mlp
from selfsup.nn.memory_bank import MemoryBank


class NPID(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        num_samples: int,  # the training set's size, filled in by the builder
        embedding_dim: int = 128,
        temperature: float = 0.07,
        num_negatives: int = 4096,  # capped at num_samples - 1
        momentum: float = 0.5,  # memory-bank momentum
        loss: Literal["nce", "infonce"] = "nce",  # the paper's NCE, or the softmax over positive + negatives
        hidden_dim: int | None = None,  # None: the paper's linear head; an int: a Linear-BN-ReLU-Linear MLP head
    ):
        super().__init__(backbone)
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        self.augment = augment
        self.temperature, self.loss = temperature, loss
        self.head = linear_or_mlp(backbone.out_dim, embedding_dim, hidden_dim)
        self.memory = MemoryBank(num_samples, embedding_dim, momentum)
        self.num_negatives = min(num_negatives, num_samples - 1)
        # NCE's log Z, estimated on the first batch (InfoNCE has none: no NaN placeholder in its checkpoints)
        self.register_buffer("log_z", torch.tensor(float("nan")) if loss == "nce" else None)

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        x = self.augment(batch.images)  # (B, 3, H, W)
        h = self.backbone(x)  # (B, D)
        v = F.normalize(self.head(h).float(), dim=1)  # (B, E) on the unit sphere
        pos = self.memory.similarity(v, batch.index[:, None]).squeeze(1)  # (B,) against its own stored vector
        neg = self.memory.similarity(v, self.memory.sample(len(batch), self.num_negatives))  # (B, N)
        if self.loss == "nce":
            if torch.isnan(self.log_z):
                self.log_z.copy_(estimate_log_z(pos, neg, self.memory.num_samples, self.temperature))
            loss = nce_loss(
                pos, neg, num_samples=self.memory.num_samples, log_z=self.log_z, temperature=self.temperature
            )
        else:
            loss = memory_info_nce(pos, neg, temperature=self.temperature)
        self.memory.update(batch.index, v)
        metrics = {"pos_cosine": pos.mean().item(), "neg_cosine": neg.mean().item()}  # the gap should open up
        return StepOutput(loss, metrics, embedding=h.detach())
