"""Patch pairs for relative patch location, and the helpers the patch-based pretext tasks share.

Doersch, Gupta & Efros, "Unsupervised Visual Representation Learning by Context
Prediction", ICCV 2015, arXiv:1505.05192. A centre patch and one of its eight
neighbours; "we include a gap between patches ... and randomly jitter each
patch location" so that "low-level cues like boundary patterns or textures
continuing between patches" cannot give the answer (Sec. 3). Chromatic
aberration is a second shortcut: the network "learns to localize a patch
relative to the lens", so colour must not carry position (Sec. 3.1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from selfsup.augment.jigsaw import crop_tiles, tile_grid_boxes

# Neighbour labels 0..7: the 3x3 cells in reading order, the centre (cell 4) left out.
NEIGHBOUR_CELLS = (0, 1, 2, 3, 5, 6, 7, 8)
NEIGHBOUR_NAMES = ("up-left", "up", "up-right", "left", "right", "down-left", "down", "down-right")


def resize_views(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """Square views x (B, C, H, H) resized to ``size`` (bilinear, antialiased when shrinking); None keeps them.

    Fashion-MNIST is 28 px: its 3x3 cells would be 9 px, too small for a
    ResNet. Upsampling to 64 px first gives 21 px cells.
    """
    if size is None or x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size)


def patch_pair_boxes(
    batch: int, size: int, gap: int, jitter: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Top-left corners (B, 2) of the centre patch and of a random neighbour, the label (B,) and the patch side.

    Same geometry as the jigsaw tiles (a 3x3 grid of cells, patch side
    ``cell - gap - jitter``, jittered in its cell): the two patches are at
    least ``gap`` pixels apart along the axis where they are neighbours.
    """
    corners, side = tile_grid_boxes(batch, size, 3, gap, jitter, generator)  # (B, 9, 2)
    label = torch.randint(0, 8, (batch,), generator=generator)  # (B,)
    cell = torch.tensor(NEIGHBOUR_CELLS)[label]  # (B,)
    rows = torch.arange(batch)
    return corners[:, 4], corners[rows, cell], label, side


def patch_pairs(
    x: torch.Tensor, gap: int, jitter: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(centre (B, C, t, t), neighbour (B, C, t, t), label (B,)) from square float views x (B, C, H, H)."""
    if x.ndim != 4 or not x.is_floating_point() or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"x must be a float batch of square views (B, C, H, H), got {x.dtype} {tuple(x.shape)}")
    centre, neighbour, label, side = patch_pair_boxes(x.shape[0], x.shape[-1], gap, jitter, generator)
    patches = crop_tiles(x, torch.stack([centre, neighbour], dim=1), side)  # (B, 2, C, t, t)
    return patches[:, 0], patches[:, 1], label.to(x.device)


_GREEN_MAGENTA = torch.tensor([-1.0, 2.0, -1.0]) / 6**0.5  # unit RGB axis from magenta to green


def project_out_green_magenta(x: torch.Tensor) -> torch.Tensor:
    """Remove each pixel's component along the green-magenta axis of x (..., 3, H, W).

    Doersch et al.'s "projection": chromatic aberration shifts green against
    magenta, so "shift green and magenta toward gray". A grey pixel (R=G=B)
    has no such component and is unchanged.
    """
    if x.shape[-3] != 3:
        raise ValueError(f"x must have 3 colour channels at dim -3, got shape {tuple(x.shape)}")
    a = _GREEN_MAGENTA.to(x.device, x.dtype).view(3, 1, 1)
    return x - (x * a).sum(dim=-3, keepdim=True) * a


def drop_colours(x: torch.Tensor, generator: torch.Generator | None = None, noise: float = 0.01) -> torch.Tensor:
    """Doersch et al.'s "color dropping": keep one random channel of each patch x (B, 3, H, W), replace the others
    by Gaussian noise with std ``noise`` times the kept channel's std."""
    b = x.shape[0]
    keep = torch.randint(0, 3, (b,), generator=generator).to(x.device)  # (B,)
    kept = x[torch.arange(b, device=x.device), keep]  # (B, H, W)
    std = kept.flatten(1).std(dim=1).view(b, 1, 1, 1) * noise
    z = torch.randn(x.shape, generator=generator).to(x.device, x.dtype) * std  # (B, 3, H, W)
    mask = F.one_hot(keep, 3).to(x.dtype).view(b, 3, 1, 1)
    return x * mask + z * (1 - mask)
