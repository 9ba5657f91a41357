"""Picture of Exemplar's classes: each image next to the augmented copies that share its class."""
from __future__ import annotations

from pathlib import Path

import torch

from selfsup.augment import ViewAugment
from selfsup.augment.convert import check_images
from selfsup.runs.pictures.canvas import float_views, grid_figure, save, show


def draw(images: torch.Tensor, path: str | Path, method=None, max_images: int = 4) -> Path:
    """One row per image: the original, then its ``n_views`` augmented copies (class i = image i).

    With an ``Exemplar`` method its augmentation and view count are used, else
    8 views with strong crops and brightness/contrast jitter.
    """
    check_images(images)
    images = images[:max_images]
    augment = getattr(method, "augment", None) or ViewAugment(images.shape[-1], crop_scale=(0.2, 1.0), gray_p=0.0)
    n = getattr(method, "n_views", 8)
    views = augment.views(images, n, generator=torch.Generator().manual_seed(0))  # n x (b, 3, S, S)
    plain = float_views(images)
    b = images.shape[0]
    fig, axes = grid_figure(b, n + 1)
    for i in range(b):
        show(axes[i * (n + 1)], plain[i], f"class {i}")
        for v in range(n):
            show(axes[i * (n + 1) + 1 + v], views[v][i], f"view {v}")
    return save(fig, path, "exemplar: copies of one image form a class")
