"""Picture of colorization: the L input, the predicted colours, the true colours, one row per image."""
from __future__ import annotations

from pathlib import Path

import torch

from selfsup.augment.convert import check_images
from selfsup.augment.lab import lightness_input


def draw(images: torch.Tensor, path: str | Path, method=None, max_images: int = 8) -> Path:
    """Write a PNG of up to ``max_images`` of ``images`` (uint8 (B, C, H, W)) to ``path``.

    Columns: L input, prediction (``method.colorize``: true L with the annealed-mean
    ab), truth. With ``method=None`` there is no model to ask, so the prediction
    column is left out: the picture shows what the network would be given and
    what it should produce.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_images(images)
    images = images[:max_images].cpu()
    lightness = (lightness_input(images) + 1.0) / 2.0  # (B, 1, H, W) in [0, 1]
    columns = [("L input", lightness.expand(-1, 3, -1, -1))]
    if method is not None:
        was_training = method.training
        method.eval()
        columns.append(("prediction", method.colorize(images).cpu().float() / 255))
        method.train(was_training)
    columns.append(("truth", images.float().expand(-1, 3, -1, -1) / 255))
    return _grid(columns, path, plt)


def _grid(columns: list[tuple[str, torch.Tensor]], path: str | Path, plt) -> Path:
    """Save a rows x columns grid of (B, 3, H, W) images in [0, 1], titled per column."""
    n = columns[0][1].shape[0]
    fig, axes = plt.subplots(n, len(columns), figsize=(1.6 * len(columns), 1.6 * n), squeeze=False)
    for j, (title, pics) in enumerate(columns):
        for i in range(n):
            ax = axes[i][j]
            ax.imshow(pics[i].clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
