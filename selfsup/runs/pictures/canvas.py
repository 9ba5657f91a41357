"""What every picture needs: float views from uint8 images, an image on an axis, a figure saved as PNG.

Figures are made with ``matplotlib.figure.Figure`` (the Agg canvas), never
pyplot: no global state, no display needed.
"""
from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from selfsup.augment import ViewAugment, to_input
from selfsup.augment.convert import check_images


def float_views(images: torch.Tensor, augment: ViewAugment | None = None, seed: int = 0) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float (B, 3, H', W'): the method's augmented views, else the plain network input."""
    check_images(images)
    if augment is not None:
        return augment(images, generator=torch.Generator().manual_seed(seed))
    return to_input(images, mean=(0.5,), std=(0.5,))


def show(ax, x: torch.Tensor, title: str | None = None, fontsize: int = 7) -> None:
    """Draw x (C, H, W) (any range; stretched to [0, 1] per image) on ``ax`` with no ticks."""
    x = x.detach().float().cpu()
    lo, hi = float(x.min()), float(x.max())
    x = (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)
    img = x.permute(1, 2, 0).numpy()
    if img.shape[2] == 1 or bool((x[0] == x[1]).all() and (x[1] == x[2]).all()):
        ax.imshow(img[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(img, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=fontsize)


def grid_figure(rows: int, cols: int, cell: float = 1.2) -> tuple[Figure, list]:
    """A figure of rows x cols axes, returned as a flat row-major list."""
    fig = Figure(figsize=(cols * cell, rows * cell + 0.3))
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def save(fig: Figure, path: str | Path, title: str | None = None) -> Path:
    """Write ``fig`` as a PNG at ``path`` (folders made as needed) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if title:
        fig.suptitle(title, fontsize=9)
    # fixed margins: tight_layout is about ten times slower per figure
    fig.subplots_adjust(left=0.04, right=0.98, bottom=0.02, top=0.9, wspace=0.3, hspace=0.45)
    fig.savefig(path, format="png", dpi=100)
    return path
