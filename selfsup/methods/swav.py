"""SwAV: swap the cluster assignments (codes) of two views, computed online with Sinkhorn-Knopp.

Caron, Misra, Mairal, Goyal, Bojanowski & Joulin, "Unsupervised Learning of
Visual Features by Contrasting Cluster Assignments", NeurIPS 2020,
arXiv:2006.09882. "we compute a code from an augmented version of the image
and predict this code from other augmented versions of the same image"; codes
are "computed online", "by matching the features to a set of K prototypes" under
"the constraint that all the prototypes are selected the same amount of times
in the batch" (Sec. 3.1). Multi-crop adds small low-resolution views that only
predict codes (Sec. 3.2).

Pseudo-code of one step (the paper's Algorithm 1, with multi-crop):
    normalize the prototypes C
    z = normalize(projector(backbone(crops)))            # every crop
    scores = z C^T                                       # (V*B, K)
    q_i = sinkhorn(scores of large crop i [+ queue])     # no gradient
    loss = mean_i mean_{v != i} CE(q_i, softmax(scores_v / tau))
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment import MultiCrop, ViewAugment
from selfsup.augment.multicrop import small_crop_augment
from selfsup.backbones.base import Backbone
from selfsup.checks import count, positive
from selfsup.data.batch import Batch
from selfsup.losses import swapped_prediction
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import gather, mlp, running_stats_frozen, sinkhorn_knopp
from selfsup.nn.distributed import rank, world_size

_N_LARGE = 2  # "two standard resolution crops"


class SwAV(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        n_prototypes: int = 3000,
        proj_hidden_dim: int = 2048,
        proj_dim: int = 128,
        temperature: float = 0.1,
        epsilon: float = 0.05,
        sinkhorn_iterations: int = 3,
        n_small_crops: int = 6,
        small_size: int | None = None,
        small_crop_scale: tuple[float, float] = (0.05, 0.14),
        queue_length: int = 0,
        queue_start_step: int = 0,
        freeze_prototypes_steps: int = 313,
    ):
        """Defaults are the paper's ImageNet settings; the large views come from ``augment``
        (the paper's crop scale there is (0.14, 1)).

        Args:
            n_prototypes: K. "we use K = 3000" on ImageNet; scale it to the data: with
                10 classes (Fashion-MNIST, CIFAR-10) 100-300 work, ~10-30x the classes.
            small_size: side of the small crops; None gives half the large size (the
                paper's 96 px beside 224 px is 0.43).
            small_crop_scale: area fraction of the small crops ("(0.05, 0.14)").
            queue_length: past embeddings per large crop used with the batch to compute
                codes; 0 disables it. "we store features from the previous batches ...
                when the batch is small" (Sec. 4.3 / appendix: 3840 at batch 256).
                It counts the embeddings of all ranks: every rank stores all of them
                and gives Sinkhorn its 1/world_size share, so W ranks match one process.
            queue_start_step: the step the queue starts filling (the paper starts it
                after 15 epochs); it is used once full.
            freeze_prototypes_steps: prototypes get no gradient for these first steps
                ("freezing the prototypes during the first epoch of training", 313
                steps at batch 4096).
        """
        super().__init__(backbone)
        count("n_prototypes", n_prototypes, at_least=1)
        count("sinkhorn_iterations", sinkhorn_iterations, at_least=1)
        positive("temperature", temperature)
        positive("epsilon", epsilon)
        count("queue_length", queue_length)
        count("queue_start_step", queue_start_step)
        count("freeze_prototypes_steps", freeze_prototypes_steps)
        small = small_crop_augment(augment, small_size or max(1, augment.size // 2), tuple(small_crop_scale))
        self.multicrop = MultiCrop(augment, small, n_large=_N_LARGE, n_small=n_small_crops)
        self.temperature, self.epsilon, self.sinkhorn_iterations = temperature, epsilon, sinkhorn_iterations
        self.queue_start_step, self.freeze_prototypes_steps = queue_start_step, freeze_prototypes_steps
        self.projector = mlp(backbone.out_dim, proj_hidden_dim, proj_dim)
        self.prototypes = nn.Linear(proj_dim, n_prototypes, bias=False)  # rows c_k, kept unit-norm
        # Past embeddings of the large crops of all ranks, newest first, the same on every rank (DDP
        # broadcasts rank 0's buffers at each forward); queue_filled counts the valid rows.
        self.register_buffer("queue", torch.zeros(_N_LARGE, queue_length, proj_dim))
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self.normalize_prototypes()

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        """Project every prototype back onto the unit sphere (done before every step, as the paper)."""
        w = self.prototypes.weight
        w.copy_(F.normalize(w.float(), dim=1))

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        self.normalize_prototypes()
        b = len(batch)
        crops = self.multicrop(batch.images)  # 2 large (B, 3, S, S) then n_small (B, 3, s, s)
        h = self.backbone(torch.cat(crops[:_N_LARGE]))  # (2B, D)
        if len(crops) > _N_LARGE:  # one backbone pass per resolution; evaluation's BN statistics stay full-size
            with running_stats_frozen(self.backbone):
                small = self.backbone(torch.cat(crops[_N_LARGE:]))
            h = torch.cat([h, small])  # (V*B, D)
        z = F.normalize(self.projector(h).float(), dim=1)  # (V*B, proj_dim), V = 2 + n_small
        c = self.prototypes.weight.float()  # (K, proj_dim)
        if step < self.freeze_prototypes_steps:
            c = c.detach()  # frozen: no gradient, so the optimizer leaves them as they are
        with torch.autocast(z.device.type, enabled=False):
            scores = z @ c.T  # (V*B, K) cosine similarities
        views = scores.split(b)  # V x (B, K)
        codes = [self._codes(views[i], i, c) for i in range(_N_LARGE)]  # 2 x (B, K), no gradient
        loss = swapped_prediction(views, codes, temperature=self.temperature)
        if self.queue.shape[1] and step >= self.queue_start_step:
            self._push(z[: _N_LARGE * b].detach().view(_N_LARGE, b, -1))
        used = torch.cat(codes).argmax(dim=1).unique().numel() / c.shape[0]
        return StepOutput(loss, {"prototypes_used": used}, embedding=h[:b].detach())

    @torch.no_grad()
    def _codes(self, scores: torch.Tensor, crop: int, prototypes: torch.Tensor) -> torch.Tensor:
        """Sinkhorn codes (B, K) of one large crop, with the queue's embeddings once it is full.

        Sinkhorn sums over the rows of all ranks, so each rank adds every W-th queued
        row: each queued embedding is counted once, as in one process.
        """
        b = scores.shape[0]
        if self.queue.shape[1] and int(self.queue_filled) == self.queue.shape[1]:
            past = self.queue[crop, rank() :: world_size()]  # (L / W, proj_dim) this rank's share
            scores = torch.cat([past @ prototypes.T, scores])  # (L / W + B, K)
        return sinkhorn_knopp(scores, epsilon=self.epsilon, iterations=self.sinkhorn_iterations)[-b:]

    @torch.no_grad()
    def _push(self, z: torch.Tensor) -> None:
        """Put the large-crop embeddings z (2, B, proj_dim) of every rank (global order) at the front of the queue."""
        z = gather(z.transpose(0, 1)).transpose(0, 1)  # (2, W*B, proj_dim)
        length, b = self.queue.shape[1], z.shape[1]
        if b > length or length % world_size():
            raise ValueError(f"queue_length={length} must be at least the global batch size {b} "
                             f"and a multiple of the {world_size()} processes")
        self.queue[:, b:] = self.queue[:, : length - b].clone()
        self.queue[:, :b] = z
        self.queue_filled.fill_(min(length, int(self.queue_filled) + b))
