"""Picture of relative patch location: the view, the centre patch, the neighbour and its label."""
from __future__ import annotations

from pathlib import Path

import torch

from selfsup.augment.patches import NEIGHBOUR_NAMES, patch_pairs, resize_views
from selfsup.runs.pictures.canvas import float_views, grid_figure, save, show


def draw(images: torch.Tensor, path: str | Path, method=None, max_images: int = 4) -> Path:
    """One row per image: the resized view, the centre patch, the neighbour patch titled with its label.

    With a ``RelativeLocation`` method, its augmentation, size, gap, jitter and chroma remedy are used.
    """
    size = getattr(method, "image_size", 64)
    gap, jitter = getattr(method, "gap", 4), getattr(method, "jitter", 2)
    x = resize_views(float_views(images[:max_images], getattr(method, "augment", None)), size)
    g = torch.Generator().manual_seed(0)
    centre, neighbour, label = patch_pairs(x, gap, jitter, generator=g)  # (b, 3, t, t) x 2, (b,)
    if method is not None:
        centre, neighbour = method.remove_chroma(centre), method.remove_chroma(neighbour)
    fig, axes = grid_figure(x.shape[0], 3)
    for i in range(x.shape[0]):
        lab = int(label[i])
        show(axes[3 * i], x[i], "view")
        show(axes[3 * i + 1], centre[i], "centre")
        show(axes[3 * i + 2], neighbour[i], f"label {lab}: {NEIGHBOUR_NAMES[lab]}")
    return save(fig, path, "relative location: where is the neighbour?")
