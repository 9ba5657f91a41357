"""Tiny methods and batches for the method tests: a ResNet-18 v1 of width 0.125 with the small stem, uint8 batches."""
from __future__ import annotations

import torch

from selfsup.augment import ViewAugment
from selfsup.backbones import build_backbone
from selfsup.config import TrainConfig
from selfsup.data import Batch
from selfsup.methods import Method, build_method
from selfsup.train.step import TrainStep


def tiny_method(name: str, augment: ViewAugment | None = None, **kwargs) -> Method:
    """``name`` on a seeded tiny backbone; views of 16 px unless ``augment`` says otherwise."""
    torch.manual_seed(0)
    backbone = build_backbone("resnet18_v1", width=0.125, stem="small")
    return build_method(name, backbone=backbone, augment=augment if augment is not None else ViewAugment(16), **kwargs)


def tiny_multicrop(name: str, **kwargs) -> Method:
    """A multi-crop method (SwAV, DINO) with two 8 px small crops beside its 16 px views."""
    return tiny_method(name, n_small_crops=2, small_size=8, **kwargs)


def loop_step(method: Method) -> TrainStep:
    """The loop's own step for ``method``: SGD at lr 0.5, fp32."""
    return TrainStep(method, TrainConfig(steps=100, lr=0.5, precision="fp32"))


def geometric_views(size: int = 28) -> ViewAugment:
    """Crops and flips only: no colour jitter or greyscale, so the pretext task's own transformation is all there is."""
    return ViewAugment(size=size, jitter_p=0.0, gray_p=0.0)


def uint8_batch(n: int = 8, size: int = 16, channels: int = 1, seed: int = 0,
                index: torch.Tensor | None = None) -> Batch:
    """``n`` seeded random (channels, size, size) uint8 images; their dataset index is 0..n-1 unless given."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8, generator=g)
    return Batch(images, torch.arange(n) if index is None else index)


def backbone_inputs(method: Method, batch: Batch) -> tuple[list[tuple[int, ...]], object]:
    """Shapes of everything the backbone is called on during one training step, and the step's output."""
    seen = []
    hook = method.backbone.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape)))
    out = method.training_step(batch, 0)
    hook.remove()
    return seen, out


def bundled_crop_sides(name: str) -> tuple[list[int], int]:
    """The sides of the crops ``name``'s bundled config makes of 28 px images, and its number of small crops."""
    from selfsup.train.build import load_checked_config

    cfg = load_checked_config(name, ["backbone.width=0.125"])
    kwargs = dict(cfg.method)
    assert kwargs.pop("name") == name
    backbone = build_backbone(cfg.backbone["name"], stem="small", width=0.125)
    m = build_method(name, backbone=backbone, augment=ViewAugment(28, **cfg.augment), **kwargs)
    return [c.shape[-1] for c in m.multicrop(uint8_batch(2, 28).images)], kwargs["n_small_crops"]

