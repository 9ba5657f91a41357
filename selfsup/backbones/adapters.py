"""Backbones as the evaluation tools read them: wrappers that change what goes in, never the weights.

An L-only encoder (colorization's, ``in_channels == 1``) is fed the normalised RGB every tool
produces through ``LightnessBackbone``; a tile-trained encoder (jigsaw, PIRL) is read on the mean
of its tiles' representations through ``TileMeanBackbone``, as "Revisiting" (arXiv:1901.09005)
evaluates jigsaw models.
"""
from __future__ import annotations

import torch
from kornia.color import rgb_to_lab

from selfsup.augment.convert import channel_stats
from selfsup.augment.jigsaw import crop_tiles, standardize_tiles, tile_grid_boxes
from selfsup.augment.patches import resize_views
from selfsup.backbones.base import Backbone


def encode_tiles(backbone: Backbone, tiles: torch.Tensor) -> torch.Tensor:
    """Each tile (B, T, C, t, t) through the shared backbone: (B, T, D)."""
    b, n = tiles.shape[:2]
    feats = backbone(tiles.flatten(0, 1))  # (B*T, D)
    return feats.view(b, n, -1)


@torch.no_grad()
def tile_representation(
    backbone: Backbone, images: torch.Tensor, grid: int = 3, image_size: int | None = 64, gap: int = 2, jitter: int = 2,
    standardize: bool = True,
) -> torch.Tensor:
    """The mean of the backbone's representations of the grid*grid tiles of float views (B, C, H, W): (B, D).

    "Revisiting" evaluates jigsaw models on the mean over the tiles' representations
    as well as on the whole image. Tiles are cut as in training, without jitter
    (each at the centre of its jitter range) and without greyscale.
    """
    x = resize_views(images, image_size)
    corners, side = tile_grid_boxes(x.shape[0], x.shape[-1], grid, gap + jitter, 0)  # same side as training
    tiles = crop_tiles(x, corners + jitter // 2, side)  # (B, T, C, t, t)
    if standardize:
        tiles = standardize_tiles(tiles)
    return encode_tiles(backbone, tiles).mean(1)


class TileMeanBackbone(Backbone):
    """A backbone whose ``pre_logits`` are ``tile_representation`` of the whole image, for the evaluation tools.

    Wraps a trained (or random) backbone; only ``pre_logits`` is offered.
    """

    feature_names = ("pre_logits",)

    def __init__(self, backbone: Backbone, grid: int = 3, image_size: int | None = 64, gap: int = 2, jitter: int = 2,
                 standardize: bool = True):
        super().__init__()
        self.backbone = backbone
        self.out_dim = backbone.out_dim
        self.tiling = dict(grid=grid, image_size=image_size, gap=gap, jitter=jitter, standardize=standardize)

    def features(self, x: torch.Tensor, names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        self.check_feature_names(names)
        return {"pre_logits": tile_representation(self.backbone, x, **self.tiling)}


class LightnessBackbone(Backbone):
    """An L-only encoder that accepts what every evaluation tool feeds: normalised RGB (``to_input`` or
    ``ViewAugment`` output for a dataset's ``mean`` and ``std``).

    It undoes the normalisation and computes L / 50 - 1 (``lightness_input``), the
    input the encoder was trained on, so kNN, probes, fine-tuning and invariance
    need no special case.
    """

    def __init__(self, backbone: Backbone, mean, std):
        super().__init__()
        self.backbone, self.out_dim, self.feature_names = backbone, backbone.out_dim, backbone.feature_names
        self.register_buffer("mean", torch.tensor(channel_stats(mean, "mean")).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(channel_stats(std, "std", positive=True)).view(1, 3, 1, 1),
                             persistent=False)

    def features(self, x: torch.Tensor, names: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
        with torch.autocast(x.device.type, enabled=False):  # the colour conversion in float32
            rgb = (x.float() * self.std + self.mean).clamp(0, 1)
            lightness = rgb_to_lab(rgb)[:, :1] / 50.0 - 1.0
        return self.backbone.features(lightness, names)


def rgb_input(backbone: Backbone, mean, std) -> Backbone:
    """``backbone`` as the evaluation tools feed it: an L-only encoder (``in_channels == 1``) wrapped, others as is."""
    return LightnessBackbone(backbone, mean, std) if getattr(backbone, "in_channels", 3) == 1 else backbone
