"""MoCo v2: a query encoder, a momentum key encoder, and a queue of past keys as negatives.

He, Fan, Wu, Xie & Girshick, "Momentum Contrast for Unsupervised Visual
Representation Learning", CVPR 2020, arXiv:1911.05722; Chen, Fan, Girshick & He,
"Improved Baselines with Momentum Contrastive Learning", arXiv:2003.04297.
MoCo v2 = MoCo v1 + "an MLP projection head and more data augmentation": the
head is "a 2-layer MLP head (hidden layer 2048-d, with ReLU)" (no BN), and
tau = 0.2. "We use a relatively large momentum (e.g., m = 0.999, our default)".

Deviation: the training loop raises the momentum from its base to 1 on BYOL's
cosine schedule (MoCo keeps it constant); at m = 0.999 the two barely differ.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.losses import info_nce_with_queue
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import FeatureQueue, gather, grouped_forward, mlp, momentum_copy, shuffled_forward


class MoCo(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        temperature: float = 0.2,
        momentum: float = 0.999,  # short runs need less (e.g. 0.99): the key encoder must move within the run
        queue_size: int = 65536,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 128,
        proj_bn: bool = False,
        shuffle_bn_groups: int = 1,
        num_samples: int | None = None,
    ):
        """Args:
        proj_bn: add BN after the head's hidden layer (SimCLR's head). MoCo v2's head has none;
            with BN, short runs learn faster (the keys start centred, the queue is less uniform).
        shuffle_bn_groups: single process only: encode queries in this many BN batches and
            keys in as many shuffled ones, emulating MoCo's shuffling BN on that many devices
            (1: no shuffling). Distributed runs always shuffle keys across ranks.
        num_samples: the training set's size, passed by the builder. The queue should hold
            keys of distinct images: a queue longer than the dataset would hold stale keys of
            the query's own image as negatives, so it is clamped to the dataset with a warning.
        """
        super().__init__(backbone)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum={momentum} must be in [0, 1)")
        if num_samples is not None and queue_size > num_samples:
            warnings.warn(f"MoCo queue_size={queue_size} exceeds the dataset's {num_samples} images; "
                          f"clamped to {num_samples}", stacklevel=2)
            queue_size = num_samples
        self.augment = augment
        self.temperature = temperature
        self.momentum = momentum
        self.shuffle_bn_groups = shuffle_bn_groups
        self.projector = (mlp(backbone.out_dim, proj_hidden_dim, proj_dim) if proj_bn else nn.Sequential(
            nn.Linear(backbone.out_dim, proj_hidden_dim), nn.ReLU(inplace=True), nn.Linear(proj_hidden_dim, proj_dim)))
        self.target_backbone = momentum_copy(backbone)
        self.target_projector = momentum_copy(self.projector)
        self.queue = FeatureQueue(queue_size, proj_dim)

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        x_q, x_k = self.augment.views(batch.images, 2)
        h = grouped_forward(self.backbone, x_q, self.shuffle_bn_groups)  # (B, D)
        q = self.projector(h)  # (B, proj_dim) queries
        with torch.no_grad():  # keys: no gradient to the key encoder
            k = self.target_projector(shuffled_forward(self.target_backbone, x_k, self.shuffle_bn_groups))
            k = F.normalize(k.float(), dim=1)  # (B, proj_dim)
        # the queue is about to change in place: the loss keeps a copy for its backward pass
        loss = info_nce_with_queue(q, k, self.queue.features.clone(), temperature=self.temperature)
        self.queue.enqueue(gather(k))  # every rank's keys, oldest out
        return StepOutput(loss, embedding=h.detach())

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.backbone, self.target_backbone), (self.projector, self.target_projector)]

    def ema_momentum(self) -> float:
        return self.momentum
