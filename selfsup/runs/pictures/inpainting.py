"""Picture of inpainting: the masked input, the reconstruction, the truth, one row per image."""
from __future__ import annotations

from pathlib import Path

import torch

from selfsup.augment.convert import check_images, to_input, to_unit_float
from selfsup.augment.masks import random_block_masks
from selfsup.runs.pictures.colorization import _grid


def draw(images: torch.Tensor, path: str | Path, method=None, max_images: int = 8) -> Path:
    """Write a PNG of up to ``max_images`` of ``images`` (uint8 (B, C, H, W)) to ``path``.

    Columns: masked input (the hole shown grey), reconstruction pasted into the
    context (``method.inpaint`` with ``method.make_masks``), truth. With
    ``method=None`` the masks are the config's random blocks (up to 1/4 of the
    area, seeded) and the reconstruction column is left out.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_images(images)
    images = images[:max_images].cpu()
    truth = to_unit_float(images).expand(-1, 3, -1, -1)  # (B, 3, H, W) in [0, 1]
    b, _, h, w = truth.shape
    if method is None:
        mask = random_block_masks(b, h, generator=torch.Generator().manual_seed(0))[:, None]
    else:
        mask = method.make_masks(b, h, torch.device("cpu"))
    columns = [("masked input", truth * (1 - mask) + 0.5 * mask)]
    if method is not None:
        was_training = method.training
        method.eval()
        device = next(method.parameters()).device
        mean, std = method.augment.mean, method.augment.std
        x = to_input(images.to(device), mean, std)  # (B, 3, H, W) normalised as in training
        filled = method.inpaint(x, mask.to(device)).cpu()
        method.train(was_training)
        std_, mean_ = (torch.tensor(v).view(1, 3, 1, 1) for v in (std, mean))
        columns.append(("reconstruction", filled * std_ + mean_))
    columns.append(("truth", truth))
    return _grid(columns, path, plt)
