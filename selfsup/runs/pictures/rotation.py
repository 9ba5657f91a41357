"""Picture of RotNet's input: each image at 0, 90, 180, 270 degrees with its label."""
from __future__ import annotations

from pathlib import Path

import torch

from selfsup.methods.rotation import rotate_all
from selfsup.runs.pictures.canvas import float_views, grid_figure, save, show


def draw(images: torch.Tensor, path: str | Path, method=None, max_images: int = 4) -> Path:
    """One row per image (up to ``max_images``): its four rotations, titled with the class the task predicts."""
    x = float_views(images[:max_images], getattr(method, "augment", None))  # (b, 3, H, W)
    b = x.shape[0]
    views, labels = rotate_all(x)  # (4b, 3, H, W), rotation k of image i at row k * b + i
    fig, axes = grid_figure(b, 4)
    for i in range(b):
        for k in range(4):
            show(axes[i * 4 + k], views[k * b + i], f"label {int(labels[k * b + i])}: {90 * k} deg")
    return save(fig, path, "rotation: predict the rotation")
