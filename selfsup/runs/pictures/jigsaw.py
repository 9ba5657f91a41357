"""Picture of the jigsaw's input: the tiles in shuffled order, the permutation, and the grid put back."""
from __future__ import annotations

from pathlib import Path

import torch

from selfsup.augment.jigsaw import jigsaw_tiles, permutation_set
from selfsup.augment.patches import resize_views
from selfsup.runs.pictures.canvas import float_views, grid_figure, save, show


def draw(images: torch.Tensor, path: str | Path, method=None, max_images: int = 2) -> Path:
    """Per image: the view, then the 9 tiles as the network receives them, then the tiles reassembled.

    With a ``Jigsaw`` method, its augmentation, permutation set, image size, gap and jitter are used;
    otherwise the defaults (100 permutations, 64 px, gap 2, jitter 2).
    """
    perms = method.perms.cpu() if method is not None else permutation_set(100)
    size = getattr(method, "image_size", 64)
    gap, jitter = getattr(method, "gap", 2), getattr(method, "jitter", 2)
    x = resize_views(float_views(images[:max_images], getattr(method, "augment", None)), size)
    g = torch.Generator().manual_seed(0)
    tiles, index = jigsaw_tiles(x, perms, 3, gap, jitter, generator=g)  # (b, 9, 3, t, t), (b,)
    b = x.shape[0]
    fig, axes = grid_figure(b * 3, 9, cell=0.9)
    for i in range(b):
        perm = perms[index[i]].tolist()
        row = axes[i * 27 : (i + 1) * 27]
        show(row[0], x[i], "view")
        for ax in row[1:9]:
            ax.axis("off")
        for k in range(9):
            show(row[9 + k], tiles[i, k], f"pos {k}: cell {perm[k]}")
        row[9].set_ylabel(f"perm #{int(index[i])}", fontsize=7)
        placed = [None] * 9
        for k, cell in enumerate(perm):
            placed[cell] = tiles[i, k]
        for cell in range(9):
            show(row[18 + cell], placed[cell], f"cell {cell}")
        row[18].set_ylabel("reassembled", fontsize=7)
    return save(fig, path, "jigsaw: which permutation shuffled the tiles? (reassembled in the last row)")
