"""Masks for inpainting: the region a context encoder must fill in (1 = hidden, 0 = visible).

Pathak et al., "Context Encoders", CVPR 2016, arXiv:1604.07379, Sec. 3.3: the
central region is a centred square hiding 1/4 of the image (half its side);
random blocks are several smaller squares, possibly overlapping, that together
hide up to 1/4 of the image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def central_square_mask(size: int, side_fraction: float = 0.5) -> torch.Tensor:
    """(size, size) float mask with a centred square of side round(side_fraction * size) set to 1."""
    if not 0 < side_fraction <= 1:
        raise ValueError(f"side_fraction must be in (0, 1], got {side_fraction!r}")
    side = max(1, round(side_fraction * size))
    start = (size - side) // 2
    mask = torch.zeros(size, size)
    mask[start : start + side, start : start + side] = 1.0
    return mask


def random_block_masks(
    n: int, size: int, blocks: int = 5, block_fraction: float = 0.25, max_area: float = 0.25,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(n, size, size) float masks, each the union of up to ``blocks`` random squares of side block_fraction * size.

    Squares are added in a random order until the next one would push the
    hidden area above ``max_area`` of the image; the first is always kept.
    """
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks!r}")
    if not 0 < block_fraction <= 1:
        raise ValueError(f"block_fraction must be in (0, 1], got {block_fraction!r}")
    side = max(1, round(block_fraction * size))
    corners = torch.randint(0, size - side + 1, (n, blocks, 2), generator=generator)  # (n, blocks, 2) top, left
    rows = torch.arange(size)
    masks = torch.zeros(n, size, size)
    for k in range(blocks):
        top, left = corners[:, k, 0:1], corners[:, k, 1:2]  # (n, 1)
        in_rows = (rows >= top) & (rows < top + side)  # (n, size)
        in_cols = (rows >= left) & (rows < left + side)
        block = (in_rows[:, :, None] & in_cols[:, None, :]).float()  # (n, size, size)
        union = torch.maximum(masks, block)
        fits = union.mean(dim=(1, 2)) <= max_area
        keep = (fits | (k == 0)).float().view(n, 1, 1)
        masks = keep * union + (1 - keep) * masks
    return masks


def border_band(mask: torch.Tensor, width: int) -> torch.Tensor:
    """The visible pixels within ``width`` pixels (Chebyshev distance) of the hidden region; mask (..., H, W)."""
    if width <= 0:
        return torch.zeros_like(mask)
    shape = mask.shape
    flat = mask.reshape(-1, 1, *shape[-2:])
    grown = F.max_pool2d(flat, 2 * width + 1, stride=1, padding=width)
    return (grown - flat).reshape(shape)
