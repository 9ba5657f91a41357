"""Relative patch location: which of its eight neighbours is this patch?

Doersch, Gupta & Efros, "Unsupervised Visual Representation Learning by Context
Prediction", ICCV 2015, arXiv:1505.05192: "we sample random pairs of patches in
one of eight spatial configurations", each patch goes through the same network
("a pair of AlexNet-style architectures ... with tied weights"), and the two
representations are joined by fully connected layers that predict the
configuration (Sec. 3, Fig. 3). A gap and jitter keep shared borders from
giving the answer, and "projection" removes the chromatic-aberration cue.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from selfsup.augment import ViewAugment
from selfsup.augment.jigsaw import standardize_tiles, tile_grid_boxes
from selfsup.augment.patches import drop_colours, patch_pairs, project_out_green_magenta, resize_views
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.methods.base import Method, StepOutput
from selfsup.nn import mlp


class RelativeLocation(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        image_size: int | None = 64,  # views are resized to this before cutting the 3x3 grid of 21 px cells
        gap: int = 4,  # least pixels between the two patches (the paper: half a patch, 48 of 96 px)
        jitter: int = 2,  # random shift of each patch inside its cell (the paper: up to 7 px)
        chroma: Literal["project", "drop", "none"] = "project",
        hidden_dim: int = 512,  # the paper's fc7 is 4096 wide for AlexNet
    ):
        """Args:
        chroma: the chromatic-aberration remedy: "project" removes the green-magenta
            component of every pixel (no-op on grey images), "drop" keeps one random
            channel per patch and replaces the others by faint noise.
        """
        super().__init__(backbone)
        if chroma not in ("project", "drop", "none"):
            raise ValueError(f"chroma must be 'project', 'drop' or 'none', got {chroma!r}")
        self.augment = augment
        self.image_size, self.gap, self.jitter, self.chroma = image_size, gap, jitter, chroma
        self.head = mlp(2 * backbone.out_dim, hidden_dim, 8)
        tile_grid_boxes(1, image_size or augment.size, 3, gap, jitter)  # fail now if the patches do not fit

    def remove_chroma(self, patches: torch.Tensor) -> torch.Tensor:
        """Patches (N, 3, t, t) with the colour cue removed as ``chroma`` says."""
        if self.chroma == "project":
            return project_out_green_magenta(patches)
        if self.chroma == "drop":
            return drop_colours(patches)
        return patches

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        b = len(batch)
        x = resize_views(self.augment(batch.images), self.image_size)  # (B, 3, S, S)
        centre, neighbour, label = patch_pairs(x, self.gap, self.jitter)  # (B, 3, t, t) x 2, (B,)
        patches = self.remove_chroma(torch.cat([centre, neighbour]))  # (2B, 3, t, t)
        patches = standardize_tiles(patches[:, None])[:, 0]  # per-patch standardisation, as "Revisiting"
        feats = self.backbone(patches)  # (2B, D)
        logits = self.head(torch.cat([feats[:b], feats[b:]], dim=1)).float()  # (B, 8)
        loss = F.cross_entropy(logits, label)
        acc = (logits.argmax(1) == label).float().mean()
        return StepOutput(loss, {"pretext_acc": acc.item()}, embedding=feats[:b].detach())
