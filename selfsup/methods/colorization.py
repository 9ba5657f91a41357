"""Colorization: predict the ab colour of every pixel from the lightness L.

Zhang, Isola & Efros, "Colorful Image Colorization", ECCV 2016, arXiv:1603.08511
(the classification loss over quantized ab, soft targets, class rebalancing,
annealed-mean decoding) with the hypercolumn head of Larsson, Maire &
Shakhnarovich, "Learning Representations for Automatic Colorization", ECCV 2016,
arXiv:1603.06668, who describe each pixel by its hypercolumn, the features of
several layers at that pixel's location, concatenated (Sec. 3).
The encoder sees only L, so it needs ``backbone.in_channels: 1`` and transfers
as it is to grey data (``selfsup.augment.lab.lightness_input`` is its input transform;
evaluation reads it through ``selfsup.backbones.adapters.LightnessBackbone``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.augment import ViewAugment
from selfsup.augment.lab import (
    ab_gamut_bins,
    decode_ab,
    lab_to_uint8,
    lightness_input,
    rebalancing_weights,
    soft_encode,
    split_lab,
)
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.methods.base import Method, StepOutput
from selfsup.nn.distributed import all_reduce


def rebalanced_cross_entropy(logits: torch.Tensor, target: torch.Tensor, pixel_weights: torch.Tensor) -> torch.Tensor:
    """-mean over pixels of v(Z_hw) * sum_q Z_hwq log softmax(logits)_hwq (Zhang et al., Eq. 2).

    logits, target: (B, Q, H, W), target a distribution over Q per pixel;
    pixel_weights: (B, H, W), the rebalancing weight of each pixel's nearest bin.
    """
    per_pixel = -(target * F.log_softmax(logits.float(), dim=1)).sum(dim=1)  # (B, H, W)
    return (pixel_weights * per_pixel).mean()


def pixel_grid(where: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Flat pixel indices (B, P) -> their centres in grid_sample's [-1, 1] coordinates, (B, P, 1, 2) as (x, y)."""
    rows, cols = where // width, where % width
    xy = torch.stack([(cols + 0.5) / width, (rows + 0.5) / height], dim=-1) * 2 - 1  # (B, P, 2)
    return xy[:, :, None, :].float()


class Colorization(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        layers: tuple[str, ...] = ("stem", "block1", "block2", "block3", "block4"),
        hidden_dim: int = 128,
        pixels_per_image: int | None = 128,  # sparse training as Larsson et al.; None: every pixel
        bin_size: float = 10.0,  # Zhang et al.'s grid
        neighbours: int = 5,  # soft encoding: 5 nearest bins, Gaussian sigma 5
        encode_sigma: float = 5.0,
        rebalance_lambda: float = 0.5,  # mix with uniform; 1 gives no rebalancing
        rebalance_sigma: float = 5.0,  # smoothing of the empirical bin distribution
        temperature: float = 0.38,  # annealed mean for decoding (pictures only)
    ):
        """Args:
        layers: backbone features concatenated (upsampled to the input size) into
            the hypercolumn; any of ``backbone.feature_names``. ``pre_logits`` is
            global and joins every pixel's column as it is, as Larsson et al.'s
            hypercolumn reaches up to VGG's fully-connected fc7.
        hidden_dim: width of the 1x1-conv head on the hypercolumn.
        pixels_per_image: the loss is computed at this many random pixels of each
            image: Larsson et al. train on a sparse random sample of pixels rather
            than all of them (Sec. 3.3), which spares the head most of its work.
        """
        super().__init__(backbone)
        if getattr(backbone, "in_channels", 3) != 1:
            raise ValueError(f"colorization feeds the L channel only: set backbone.in_channels: 1 "
                             f"(got in_channels={getattr(backbone, 'in_channels', 3)})")
        layers = backbone.check_feature_names(tuple(layers))
        self.augment = augment
        self.layers = layers
        if pixels_per_image is not None and pixels_per_image < 1:
            raise ValueError(f"pixels_per_image must be >= 1 or None, got {pixels_per_image!r}")
        self.pixels_per_image = pixels_per_image
        self.neighbours, self.encode_sigma = neighbours, encode_sigma
        self.rebalance_lambda, self.rebalance_sigma = rebalance_lambda, rebalance_sigma
        self.temperature = temperature
        self.register_buffer("centers", ab_gamut_bins(bin_size))  # (Q, 2) in-gamut ab bin centres
        self.register_buffer("bin_counts", torch.zeros(len(self.centers), dtype=torch.float64))  # targets seen so far
        shapes = backbone.feature_shapes(augment.size)
        channels = sum(shapes[name][0] for name in layers)  # pre_logits: (D,), its D channels
        self.head = nn.Sequential(
            nn.Conv2d(channels, hidden_dim, 1, bias=False), nn.BatchNorm2d(hidden_dim), nn.ReLU(inplace=True),
            nn.Conv2d(hidden_dim, len(self.centers), 1),
        )

    def hypercolumns(self, lightness: torch.Tensor, grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """L input (B, 1, H, W) -> bin logits (B, Q, *grid) at the ``grid`` (B, *grid, 2) points, and pre-logits (B, D).

        Each layer is sampled bilinearly at the points, which is the upsampled
        map (``align_corners=False``) read at those pixels without upsampling it whole.
        """
        feats = self.backbone.features(lightness, (*self.layers, "pre_logits"))

        def at_points(f: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) or global (B, C) -> (B, C, *grid)
            if f.ndim == 2:
                return f.float()[:, :, None, None].expand(-1, -1, *grid.shape[1:3])
            return F.grid_sample(f.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)

        column = torch.cat([at_points(feats[name]) for name in self.layers], dim=1)  # (B, sum C, *grid)
        return self.head(column), feats["pre_logits"]

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        x = self.augment(batch.images)  # (B, 3, S, S) normalised; crops and flips only
        b, _, h, w = x.shape
        mean = x.new_tensor(self.augment.mean).view(1, 3, 1, 1)
        std = x.new_tensor(self.augment.std).view(1, 3, 1, 1)
        pixels = h * w if self.pixels_per_image is None else min(self.pixels_per_image, h * w)
        where = torch.rand(b, h * w, device=x.device).argsort(dim=1)[:, :pixels]  # (B, P) distinct flat pixels
        with torch.autocast(x.device.type, enabled=False), torch.no_grad():
            lightness, ab = split_lab(x * std + mean)  # (B, 1, S, S) in [0, 100], (B, 2, S, S)
            ab = ab.flatten(2).gather(2, where[:, None].expand(-1, 2, -1))[..., None]  # (B, 2, P, 1)
            target = soft_encode(ab, self.centers, self.neighbours, self.encode_sigma)  # (B, Q, P, 1)
            nearest = target.argmax(dim=1)  # (B, P, 1) the bin of each pixel's true colour
            # summed over ranks: DDP broadcasts rank 0's buffers at each forward, so local counts would be lost
            self.bin_counts += all_reduce(torch.bincount(nearest.flatten(), minlength=len(self.centers)).double())
            weights = rebalancing_weights(self.bin_counts, self.centers, self.rebalance_sigma, self.rebalance_lambda)
        logits, pre_logits = self.hypercolumns(lightness / 50.0 - 1.0, pixel_grid(where, h, w))  # (B, Q, P, 1)
        loss = rebalanced_cross_entropy(logits, target, weights[nearest])
        prior_bin = self.bin_counts.argmax()  # predicting the most frequent colour everywhere: the baseline
        metrics = {"pretext_acc": (logits.argmax(1) == nearest).float().mean().item(),
                   "prior_acc": (nearest == prior_bin).float().mean().item()}
        return StepOutput(loss, metrics, embedding=pre_logits.detach())

    @torch.no_grad()
    def colorize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> uint8 sRGB (B, 3, H, W): the true L with the annealed-mean ab prediction."""
        inp = lightness_input(images.to(self.centers.device))  # (B, 1, H, W) = L / 50 - 1
        b, _, h, w = inp.shape
        where = torch.arange(h * w, device=inp.device).expand(b, -1)  # every pixel, row by row
        logits, _ = self.hypercolumns(inp, pixel_grid(where, h, w))  # (B, Q, HW, 1)
        return lab_to_uint8((inp + 1.0) * 50.0, decode_ab(logits.view(b, -1, h, w), self.centers, self.temperature))
