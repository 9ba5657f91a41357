"""How much a representation moves when its input is transformed.

PIRL (Misra & van der Maaten 2020, Fig. 3) compares "the l2 distance between
the representation of an image and its transformed version": a pretext task
that predicts the transformation must keep it in the features, an invariant
method removes it. Representations are L2-normalized first, so distances of
different encoders are on the same [0, 2] scale.

Two readings of "its jigsaw-transformed version": "jigsaw" encodes the image
reassembled from shuffled cells, one input; "tiles" is PIRL's own v_I^t, the
nine tiles each through the backbone and their representations pooled (the
mean: a tile's position and order are then irrelevant, so shuffling them
changes nothing), compared with the whole image's representation.

Raw distances of two encoders are on one [0, 2] scale but not of one spread:
an encoder that packs all images into a narrow cone scores small distances for
any transform. ``relative`` divides by the mean distance between two different
images' representations: how far the transform moves an image, in units of how
far apart images lie. PIRL against jigsaw on Fashion-MNIST, read both ways:
docs/evaluation.md#pirl-against-jigsaw.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from selfsup.augment import ViewAugment, to_input
from selfsup.backbones.adapters import TileMeanBackbone
from selfsup.backbones.base import Backbone
from selfsup.data import ImageDataset
from selfsup.precision import Precision, autocast, autocast_dtype

# uint8 (B, C, H, W) images, their evaluation input (B, 3, S, S), a generator -> the transformed input
Transform = Callable[[torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def rotate(images: torch.Tensor, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image turned by 90, 180 or 270 degrees (drawn per image)."""
    k = torch.randint(1, 4, (x.shape[0],), generator=gen)
    return torch.stack([torch.rot90(xi, int(ki), dims=(1, 2)) for xi, ki in zip(x, k)])


def shuffle_tiles(images: torch.Tensor, x: torch.Tensor, gen: torch.Generator, grid: int = 3) -> torch.Tensor:
    """The image cut into grid x grid cells and reassembled in a random order (one permutation per image).

    A border of size % grid pixels stays in place.
    """
    b, c, s, _ = x.shape
    t = s // grid
    cells = x[:, :, : t * grid, : t * grid].reshape(b, c, grid, t, grid, t).permute(0, 2, 4, 1, 3, 5)
    cells = cells.reshape(b, grid * grid, c, t, t)  # (B, 9, C, t, t), row-major cells
    perm = torch.argsort(torch.rand(b, grid * grid, generator=gen), dim=1)
    cells = cells[torch.arange(b)[:, None], perm]
    out = x.clone()
    out[:, :, : t * grid, : t * grid] = (cells.reshape(b, grid, grid, c, t, t).permute(0, 3, 1, 4, 2, 5)
                                         .reshape(b, c, t * grid, t * grid))
    return out


def _view(**kw) -> Callable[[ImageDataset, int], Transform]:
    def make(dataset: ImageDataset, size: int) -> Transform:
        aug = ViewAugment(size, mean=tuple(dataset.mean), std=tuple(dataset.std), **kw)
        return lambda images, x, gen: aug(images, gen)
    return make


TRANSFORMS: dict[str, Callable[[ImageDataset, int], Transform]] = {
    "rotation": lambda dataset, size: rotate,
    "jigsaw": lambda dataset, size: shuffle_tiles,
    "colour": _view(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, jitter_p=1.0, gray_p=0.2),
    "crop": _view(crop_scale=(0.2, 1.0), flip_p=0.5, jitter_p=0.0, gray_p=0.0),
}
# not an input transform: the transformed image's representation is the mean of its tiles' (TileMeanBackbone)
TILES = "tiles"
NAMES = (*TRANSFORMS, TILES)


@torch.no_grad()
def invariance(backbone: Backbone, dataset: ImageDataset, size: int, *,
               transforms: tuple[str, ...] = NAMES, n: int = 2000, batch_size: int = 256,
               device: str | torch.device = "cpu", precision: Precision = "auto", seed: int = 0,
               tiling: dict | None = None) -> dict[str, dict]:
    """Per transform: L2 and cosine distances between the normalized pre-logits of x and t(x).

    ``tiling``: "tiles" cuts the tiles as this (TileMeanBackbone's keyword
    arguments: grid, image_size, gap, jitter, standardize), best the method's
    own training tiling; None takes TileMeanBackbone's defaults.

    Returns ``{name: {"l2": array (n,), "cosine": array (n,), "relative": array (n,), "l2_mean": ...,
    "l2_median": ..., "cosine_mean": ..., "l2_between_mean": ..., "relative_mean": ...}}`` over the first
    ``n`` images of ``dataset``. ``l2_between_mean`` is the mean distance between two different images'
    representations and ``relative`` = l2 / l2_between_mean: how far the transform moves an
    image in units of how far apart images lie. Raw distances of two encoders are on one scale but
    not one spread: an encoder that packs every image into a narrow cone has small distances for
    everything, invariant or not.
    """
    unknown = sorted(set(transforms) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown invariance transform(s) {unknown}; choose from {sorted(NAMES)}")
    device = torch.device(device)
    backbone = backbone.to(device).eval()
    n = min(n, len(dataset))

    def embed(x: torch.Tensor, encoder: torch.nn.Module = backbone) -> torch.Tensor:
        with autocast(device, autocast_dtype(precision, device)):
            h = encoder(x.contiguous(memory_format=torch.channels_last)).float()
        return torch.nn.functional.normalize(h, dim=1)

    out = {}
    for name in transforms:
        if name == TILES:
            tiled = TileMeanBackbone(backbone, **(tiling or {})).eval()
            transformed = lambda images, x, gen: embed(x, tiled)  # noqa: E731
        else:
            transform = TRANSFORMS[name](dataset, size)
            transformed = lambda images, x, gen: embed(transform(images, x, gen).to(device))  # noqa: E731
        gen = torch.Generator().manual_seed(seed)
        l2, cos, between = [], [], []
        for start in range(0, n, batch_size):
            images = torch.from_numpy(np.array(dataset.images[start : min(n, start + batch_size)]))
            images = images.permute(0, 3, 1, 2).to(device)  # uint8 (B, C, H, W)
            x = to_input(images, dataset.mean, dataset.std, size)
            z, zt = embed(x), transformed(images, x, gen)
            l2.append((z - zt).norm(dim=1).cpu())
            cos.append((1 - (z * zt).sum(1)).cpu())
            between.append((z - z.roll(1, 0)).norm(dim=1).cpu())  # each image against its neighbour in the batch
        l2_all, cos_all, between_mean = torch.cat(l2).numpy(), torch.cat(cos).numpy(), float(torch.cat(between).mean())
        relative = l2_all / max(between_mean, 1e-12)
        out[name] = {"l2": l2_all, "cosine": cos_all, "relative": relative, "l2_mean": float(l2_all.mean()),
                     "l2_median": float(np.median(l2_all)), "cosine_mean": float(cos_all.mean()),
                     "l2_between_mean": between_mean, "relative_mean": float(relative.mean())}
    return out
