"""Context encoder: fill in a hidden region of the image from its surroundings.

Pathak, Krähenbühl, Donahue, Darrell & Efros, "Context Encoders: Feature
Learning by Inpainting", CVPR 2016, arXiv:1604.07379. The encoder is the
backbone (its last spatial block), joined to the decoder by a channel-wise
fully-connected layer that lets every position of a feature map see every
other (Sec. 3.1); the loss is lambda_rec L_rec + lambda_adv L_adv with
lambda_rec = 0.999 and lambda_adv = 0.001 (Sec. 3.2 and 4).

The paper's feature-learning encoder (AlexNet to pool5) meets the decoder through
that channel-wise layer; its released inpainting code instead squeezes the
encoder to one vector (a 4000-unit bottleneck) that the decoder unfolds.
``bottleneck="pre_logits"`` is that variant on our backbones: the decoder reads
the pooled pre-logits, the representation every evaluation reads, so what the
hole needs must pass through it.

The loop has one optimizer and one backward, so both players' terms go into
one loss and each player only gets its own gradients: the generator's
adversarial term reads the discriminator through detached parameters
(``torch.func.functional_call``), and the discriminator's term sees a detached
reconstruction. The discriminator has no BatchNorm, so the functional call
updates no running statistics behind the module's back.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from selfsup.augment import ViewAugment
from selfsup.augment.masks import border_band, central_square_mask, random_block_masks
from selfsup.backbones.base import Backbone
from selfsup.data.batch import Batch
from selfsup.methods.base import Method, StepOutput


def masked_l2(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum w (pred - target)^2 / (C sum w): the mean squared error over the weighted pixels.

    pred, target: (B, C, H, W); weights: (B, 1, H, W) (1 in the hole, more in the overlap band).
    """
    per_pixel = (pred.float() - target.float()).pow(2).sum(dim=1, keepdim=True)  # (B, 1, H, W)
    return (weights * per_pixel).sum() / (weights.sum() * pred.shape[1]).clamp_min(1e-12)


def adversarial_terms(disc: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(generator loss, discriminator loss) of the standard GAN, each reaching only its own player.

    The generator's term -log D(fake) flows into ``fake`` but not into D's
    parameters (read detached); D's term -log D(real) - log(1 - D(fake)) sees
    ``fake`` detached, so it reaches D's parameters only.
    """
    frozen = {name: p.detach() for name, p in disc.named_parameters()}
    g_logits = functional_call(disc, frozen, (fake,)).float()  # (B,)
    g_loss = F.binary_cross_entropy_with_logits(g_logits, torch.ones_like(g_logits))
    real_logits, fake_logits = disc(real).float(), disc(fake.detach()).float()
    d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
              + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
    return g_loss, d_loss


class ChannelwiseFC(nn.Module):
    """Each channel's h*w map goes through its own dense h*w -> h*w layer (no mixing across channels)."""

    def __init__(self, channels: int, height: int, width: int):
        super().__init__()
        n = height * width
        self.weight = nn.Parameter(torch.randn(channels, n, n) / n**0.5)
        self.bias = nn.Parameter(torch.zeros(channels, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = torch.einsum("cij,bcj->bci", self.weight.to(x.dtype), x.reshape(b, c, h * w)) + self.bias.to(x.dtype)
        return y.view(b, c, h, w)


def decoder(in_channels: int, in_size: int, out_channels: int, out_size: int, width: int) -> nn.Sequential:
    """Upsample x2 + 3x3 conv + BN + ReLU until the map reaches ``out_size``, then a 3x3 conv to the image."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width * 4, 1, bias=False), nn.BatchNorm2d(width * 4),
                               nn.ReLU(inplace=True)]
    c, size = width * 4, in_size
    while size < out_size:
        c_next = max(width, c // 2)
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c_next, 3, padding=1, bias=False),
                   nn.BatchNorm2d(c_next), nn.ReLU(inplace=True)]
        c, size = c_next, size * 2
    if size != out_size:
        layers.append(nn.Upsample(size=(out_size, out_size), mode="bilinear", align_corners=False))
    layers.append(nn.Conv2d(c, out_channels, 3, padding=1))
    return nn.Sequential(*layers)


def discriminator(in_channels: int, width: int) -> nn.Sequential:
    """Three stride-2 4x4 convs with leaky ReLU (as DCGAN, without BatchNorm), pooled to one logit per image."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(width, width * 2, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(width * 2, width * 4, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width * 4, 1), nn.Flatten(0),
    )


class VectorToMap(nn.Module):
    """A (B, D) vector -> (B, C, H, W) map by one fully-connected layer: the decoder's start from a bottleneck."""

    def __init__(self, dim: int, channels: int, height: int, width: int):
        super().__init__()
        self.shape = (channels, height, width)
        self.fc = nn.Linear(dim, channels * height * width)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.fc(v).view(v.shape[0], *self.shape)


class Inpainting(Method):
    def __init__(
        self,
        backbone: Backbone,
        augment: ViewAugment,
        mask: Literal["center", "random_blocks"] = "center",
        mask_fraction: float = 0.5,  # side of the central square (1/4 of the area) or of each random block
        rec_weight: float = 0.999,  # the paper's lambda_rec
        adv_weight: float = 0.001,  # the paper's lambda_adv
        disc_weight: float = 1.0,  # the discriminator's own loss, as its own optimiser would see it
        overlap: int = 0,  # width in pixels of the visible band around the hole also reconstructed
        overlap_weight: float = 10.0,  # the paper weights the overlap band 10x
        bottleneck: Literal["channel_fc", "pre_logits", "none"] = "channel_fc",
        decoder_width: int = 32,
        disc_width: int = 32,
    ):
        super().__init__(backbone)
        if not 0 < mask_fraction <= 1:
            raise ValueError(f"mask_fraction must be in (0, 1], got {mask_fraction!r}")
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0, got {overlap!r}")
        self.augment = augment
        self.mask, self.mask_fraction = mask, mask_fraction
        self.rec_weight, self.adv_weight, self.disc_weight = rec_weight, adv_weight, disc_weight
        self.overlap, self.overlap_weight = overlap, overlap_weight
        self.bottleneck = bottleneck
        # the decoder reads the last spatial block (its own map, or one unfolded from the pooled pre-logits)
        self.layer = "pre_logits" if bottleneck == "pre_logits" else backbone.feature_names[-2]
        c, h, w = backbone.feature_shapes(augment.size)[backbone.feature_names[-2]]
        self.bridge = {"channel_fc": lambda: ChannelwiseFC(c, h, w), "none": nn.Identity,
                       "pre_logits": lambda: VectorToMap(backbone.out_dim, c, h, w)}[bottleneck]()
        self.decoder = decoder(c, h, 3, augment.size, decoder_width)
        self.disc = discriminator(3, disc_width)

    def make_masks(self, n: int, size: int, device: torch.device) -> torch.Tensor:
        """(n, 1, size, size) masks, 1 on the hidden pixels."""
        if self.mask == "center":
            m = central_square_mask(size, self.mask_fraction).expand(n, size, size)
        else:
            m = random_block_masks(n, size, block_fraction=self.mask_fraction / 2)
        return m[:, None].to(device)

    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image (B, 3, S, S) and mask (B, 1, S, S) -> reconstruction (B, 3, S, S) and pre-logits (B, D)."""
        hidden = x * (1 - mask)  # the hole filled with 0, the data set's mean colour after normalisation
        feats = self.backbone.features(hidden, (self.layer, "pre_logits"))
        return self.decoder(self.bridge(feats[self.layer])), feats["pre_logits"]  # (B, 3, S, S), (B, D)

    def losses(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three terms for images x (B, 3, S, S): reconstruction, generator's and discriminator's adversarial."""
        rec, pre_logits = self.reconstruct(x, mask)
        weights = mask + self.overlap_weight * border_band(mask, self.overlap)  # (B, 1, S, S)
        fake = x * (1 - mask) + rec * mask  # the context with the hole filled in
        g_adv, d_loss = adversarial_terms(self.disc, x, fake)
        return {"rec": masked_l2(rec, x, weights), "adv": g_adv, "disc": d_loss,
                "hole_l2": masked_l2(rec.detach(), x, mask), "mean_l2": masked_l2(torch.zeros_like(x), x, mask),
                "pre_logits": pre_logits}

    def training_step(self, batch: Batch, step: int) -> StepOutput:
        x = self.augment(batch.images)  # (B, 3, S, S)
        terms = self.losses(x, self.make_masks(x.shape[0], x.shape[-1], x.device))
        loss = self.rec_weight * terms["rec"] + self.adv_weight * terms["adv"] + self.disc_weight * terms["disc"]
        metrics = {k: terms[k].item() for k in ("rec", "adv", "disc", "hole_l2", "mean_l2")}
        return StepOutput(loss, metrics, embedding=terms["pre_logits"].detach())

    @torch.no_grad()
    def inpaint(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalised images (B, 3, S, S) -> the same with the masked region replaced by the reconstruction."""
        rec, _ = self.reconstruct(x, mask)
        return x * (1 - mask) + rec * mask
