"""PIRL: representations invariant to a pretext transformation, learned against a memory bank.

Misra & van der Maaten, "Self-Supervised Learning of Pretext-Invariant
Representations", CVPR 2020, arXiv:1912.01991. An image I and its transformed
copy I^t go through the same backbone; head f maps the image's features, head g
the transformed copy's, to 128-d. The memory bank holds m_I, a moving average
of f(v_I), and the loss is (Eq. 5)

    L = lambda * L_NCE(m_I, g(v_I^t)) + (1 - lambda) * L_NCE(m_I, f(v_I)),  lambda = 0.5,

each NCE term telling m_I from N = 32,000 memory rows of other images, with
cosine similarity and temperature 0.07 (Sec. 3.1-3.2, 4.1). For the jigsaw
transformation every one of the nine patches goes through the backbone on its
own and is projected to 128-d; the nine projections are concatenated in a
random order and projected once more to 128-d (Sec. 3.2): the tile order
carries no information, so g cannot depend on it. We draw a fresh uniform
permutation of the nine tiles per image.

``transform``: "jigsaw" (the paper's main model), "rotation" (I^t rotated by
0/90/180/270 degrees, g a linear head; the paper's Sec. 5 extension), or
"both", whose transformed-view term is the mean of the two NCE terms.

``hidden_dim`` makes f and the per-tile projection of g Linear-BN-ReLU-Linear
MLPs: not the paper's linear heads, but short runs learn only with them
(pirl.yaml and npid.yaml give the figures).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.augment.jigsaw import jigsaw_tiles, standardize_tiles, tile_grid_boxes
from selfsup.augment.patches import resize_views
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.losses.nce import estimate_log_z, memory_info_nce, nce_loss
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import linear_or_mlp
from selfsup.nn.memory_bank import MemoryBank


def random_rotation(x: torch.Tensor) -> torch.Tensor:
    """Each square image of x (B, C, H, W) rotated by its own random multiple of 90 degrees."""
    k = torch.randint(4, (x.shape[0],))
    out = x.clone()
    for r in range(1, 4):
        rows = (k == r).nonzero().flatten().to(x.device)
        out[rows] = torch.rot90(x[rows], r, dims=(2, 3))
    return out


class JigsawHead(nn.Module):
    """g for jigsaw: a linear map per tile (shared), the nine concatenated in their shuffled order, a linear map."""

    def __init__(self, in_dim: int, dim: int, tiles: int = 9, hidden_dim: int | None = None):
        super().__init__()
        self.tile = linear_or_mlp(in_dim, dim, hidden_dim)
        self.mix = nn.Linear(tiles * dim, dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, dim)
        b, t, _ = feats.shape
        # (B*T, D) -> (B, T, dim) -> (B, T*dim)
        return self.mix(self.tile(feats.flatten(0, 1)).view(b, t, -1).flatten(1))


class PIRL(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        num_samples: int,  # the training set's size, filled in by the builder
        transform: Literal["jigsaw", "rotation", "both"] = "jigsaw",
        embedding_dim: int = 128,
        temperature: float = 0.07,
        num_negatives: int | None = None,  # None: min(32000, num_samples // 2); the paper uses 32,000 on ImageNet
        loss_weight: float = 0.5,  # lambda, the weight of the transformed-view term
        momentum: float = 0.5,  # memory-bank momentum
        loss: Literal["nce", "infonce"] = "nce",
        image_size: int | None = 64,  # jigsaw: views resized to this before tiling (None: keep their size)
        gap: int = 2,  # jigsaw: least pixels between neighbouring tiles
        jitter: int = 2,  # jigsaw: random shift of each tile inside its cell
        hidden_dim: int | None = None,  # None: the paper's linear f and per-tile g; an int: MLP heads of that width
    ):
        super().__init__(backbone)
        if not 0.0 <= loss_weight <= 1.0:
            raise ValueError(f"loss_weight (lambda) must be in [0, 1], got {loss_weight!r}")
        n_neg = min(32000, num_samples // 2) if num_negatives is None else num_negatives
        if not 1 <= n_neg < num_samples:
            raise ValueError(f"num_negatives must be in [1, num_samples={num_samples}), got {n_neg}")
        self.augment = augment
        self.transform, self.loss, self.temperature = transform, loss, temperature
        self.loss_weight, self.num_negatives = loss_weight, n_neg
        self.image_size, self.gap, self.jitter = image_size, gap, jitter
        d = backbone.out_dim
        self.f = linear_or_mlp(d, embedding_dim, hidden_dim)
        self.g_jigsaw = JigsawHead(d, embedding_dim, hidden_dim=hidden_dim) if transform in ("jigsaw", "both") else None
        self.g_rotation = linear_or_mlp(d, embedding_dim, hidden_dim) if transform in ("rotation", "both") else None
        if self.g_jigsaw is not None:
            tile_grid_boxes(1, image_size or augment.size, 3, gap, jitter)  # fail now if the tiles do not fit
        self.memory = MemoryBank(num_samples, embedding_dim, momentum)
        # NCE's log Z, estimated on the first batch (InfoNCE has none: no NaN placeholder in its checkpoints)
        self.register_buffer("log_z", torch.tensor(float("nan")) if loss == "nce" else None)

    def eval_tiling(self) -> dict | None:
        return dict(image_size=self.image_size, gap=self.gap, jitter=self.jitter) if self.g_jigsaw is not None else None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)  # (B, D)

    def transformed(self, images: torch.Tensor) -> list[torch.Tensor]:
        """g(v_I^t) (B, E), one per transformation, each of its own fresh view of the images."""
        out = []
        if self.g_jigsaw is not None:
            x = resize_views(self.augment(images), self.image_size)  # (B, 3, S, S)
            perms = torch.argsort(torch.rand(len(images), 9), dim=1)  # (B, 9) a random tile order per image
            tiles, _ = jigsaw_tiles(x, perms, 3, self.gap, self.jitter)  # (B, 9, 3, t, t)
            b, t = tiles.shape[:2]
            feats = self.encode(standardize_tiles(tiles).flatten(0, 1)).view(b, t, -1)  # (B, 9, D)
            out.append(self.g_jigsaw(feats))
        if self.g_rotation is not None:
            out.append(self.g_rotation(self.encode(random_rotation(self.augment(images)))))
        return out

    def nce(self, z: torch.Tensor, pos_index: torch.Tensor, neg_index: torch.Tensor) -> torch.Tensor:
        """L_NCE of unit vectors z (B, E) against their memory rows (B,) and noise rows (B, N)."""
        pos = self.memory.similarity(z, pos_index[:, None]).squeeze(1)  # (B,) cosine with m_I
        neg = self.memory.similarity(z, neg_index)  # (B, N) cosine with m_I' of other images
        if self.loss == "infonce":
            return memory_info_nce(pos, neg, temperature=self.temperature)
        if torch.isnan(self.log_z):
            self.log_z.copy_(estimate_log_z(pos, neg, self.memory.num_samples, self.temperature))
        return nce_loss(pos, neg, num_samples=self.memory.num_samples, log_z=self.log_z, temperature=self.temperature)

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        h = self.encode(self.augment(batch.images))  # (B, D) v_I
        f = F.normalize(self.f(h).float(), dim=1)  # (B, E)
        gs = [F.normalize(g.float(), dim=1) for g in self.transformed(batch.images)]  # each (B, E)
        neg_index = self.memory.sample(len(batch), self.num_negatives)  # (B, N), shared by both terms
        image_term = self.nce(f, batch.index, neg_index)
        transformed_term = torch.stack([self.nce(g, batch.index, neg_index) for g in gs]).mean()
        loss = pirl_loss(transformed_term, image_term, self.loss_weight)
        self.memory.update(batch.index, f)  # m_I tracks f(v_I), the untransformed image's embedding
        agree = (f * gs[0]).sum(1).mean()  # cosine of f(v_I) and g(v_I^t): rises as g becomes invariant
        return StepOutput(loss, {"f_g_cosine": agree.item()}, embedding=h.detach())


def pirl_loss(transformed_term: torch.Tensor, image_term: torch.Tensor, loss_weight: float = 0.5) -> torch.Tensor:
    """PIRL's Eq. 5: lambda * L_NCE(m_I, g(v_I^t)) + (1 - lambda) * L_NCE(m_I, f(v_I))."""
    return loss_weight * transformed_term + (1.0 - loss_weight) * image_term
