"""Jigsaw: put nine shuffled tiles back in order, by classifying which permutation shuffled them.

Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving
Jigsaw Puzzles", ECCV 2016, arXiv:1603.09246. A "context-free network": each
tile goes through the same network on its own ("the tiles are first fed
separately through a sequence of convolutional layers with shared weights"),
then "the features are concatenated" and fully connected layers predict "the
index of the chosen permutation" out of a fixed set of 100 (Sec. 3.1, 3.3).
Tile-level greyscale (p = 2/3) and per-tile standardisation follow "Revisiting
Self-Supervised Visual Representation Learning" (arXiv:1901.09005).
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.augment.jigsaw import grayscale_tiles, jigsaw_tiles, permutation_set, standardize_tiles, tile_grid_boxes
from selfsup.augment.patches import resize_views
from selfsup.backbones.adapters import encode_tiles
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import mlp


class Jigsaw(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        num_permutations: int = 100,  # the paper's default; Table 3 compares 64 to 1000
        image_size: int | None = 64,  # views are resized to this before tiling (None: keep their size)
        gap: int = 2,  # least pixels between neighbouring tiles
        jitter: int = 2,  # random shift of each tile inside its cell, in pixels
        gray_p: float = 2 / 3,
        standardize: bool = True,  # per-tile zero mean, unit std, as "Revisiting"
        hidden_dim: int | None = None,
    ):
        """Args:
        hidden_dim: None puts one linear layer on the concatenated tile features;
            an int adds a hidden layer (the paper's fc7, 4096 wide for AlexNet).
        """
        super().__init__(backbone)
        if not 0.0 <= gray_p <= 1.0:
            raise ValueError(f"gray_p must be in [0, 1], got {gray_p!r}")
        self.augment = augment
        self.image_size, self.gap, self.jitter, self.gray_p = image_size, gap, jitter, gray_p
        self.standardize = standardize
        self.register_buffer("perms", permutation_set(num_permutations))  # (P, 9), saved with checkpoints
        d = 9 * backbone.out_dim
        self.head = nn.Linear(d, num_permutations) if hidden_dim is None else mlp(d, hidden_dim, num_permutations)
        tile_grid_boxes(1, image_size or augment.size, 3, gap, jitter)  # fail now if the tiles do not fit

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        x = resize_views(self.augment(batch.images), self.image_size)  # (B, 3, S, S)
        tiles, label = jigsaw_tiles(x, self.perms, 3, self.gap, self.jitter)  # (B, 9, 3, t, t), (B,)
        tiles = grayscale_tiles(tiles, self.gray_p)
        if self.standardize:
            tiles = standardize_tiles(tiles)
        feats = encode_tiles(self.backbone, tiles)  # (B, 9, D), in shuffled order
        logits = self.head(feats.flatten(1)).float()  # (B, P)
        loss = F.cross_entropy(logits, label)
        acc = (logits.argmax(1) == label).float().mean()
        return StepOutput(loss, {"pretext_acc": acc.item()}, embedding=feats.mean(1).detach())

    def eval_tiling(self) -> dict:
        return dict(image_size=self.image_size, gap=self.gap, jitter=self.jitter, standardize=self.standardize)
