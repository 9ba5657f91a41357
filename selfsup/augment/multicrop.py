"""Multi-crop views (SwAV, arXiv:2006.09882; DINO, arXiv:2104.14294): a few large views plus many small ones.

SwAV: "we use two standard resolution crops and sample V additional low
resolution crops that cover only small parts of the image". Typical settings
are large ``crop_scale=(0.14, 1)`` and small ``crop_scale=(0.05, 0.14)``; for
32 px data the small views are 16 px.
"""
from __future__ import annotations

import torch

from selfsup.augment.convert import check_images
from selfsup.augment.views import ViewAugment


class MultiCrop:
    """``n_large`` views from ``large`` then ``n_small`` views from ``small``, each (B, 3, size, size)."""

    def __init__(self, large: ViewAugment, small: ViewAugment, *, n_large: int = 2, n_small: int = 6):
        for name, aug in (("large", large), ("small", small)):
            if not isinstance(aug, ViewAugment):
                raise ValueError(f"{name} must be a ViewAugment, got {type(aug).__name__}")
        if isinstance(n_large, bool) or not isinstance(n_large, int) or n_large < 1:
            raise ValueError(f"n_large must be an int >= 1, got {n_large!r}")
        if isinstance(n_small, bool) or not isinstance(n_small, int) or n_small < 0:
            raise ValueError(f"n_small must be an int >= 0, got {n_small!r}")
        self.large, self.small = large, small
        self.n_large, self.n_small = n_large, n_small

    def __repr__(self) -> str:
        return f"MultiCrop(large={self.large!r}, small={self.small!r}, n_large={self.n_large}, n_small={self.n_small})"

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """uint8 (B, C, H, W) -> n_large + n_small float views, large first (each size group is one batched op)."""
        check_images(images)
        views = self.large.views(images, self.n_large, generator)
        if self.n_small:
            views += self.small.views(images, self.n_small, generator)
        return views


def small_crop_augment(large: ViewAugment, size: int, crop_scale: tuple[float, float]) -> ViewAugment:
    """The small views' augmentation: every setting of ``large`` but the size and crop scale.

    Methods get the large-view ``ViewAugment`` from the config's ``augment:``
    section and build the small one from it, so the two never drift apart.
    The blur kernel is re-derived from the small size.
    """
    if not isinstance(large, ViewAugment):
        raise ValueError(f"large must be a ViewAugment, got {type(large).__name__}")
    return ViewAugment(**{**vars(large), "size": size, "crop_scale": crop_scale, "blur_kernel": None})
