"""Frozen-feature extraction and the on-disk cache every evaluation protocol reads.

Features are extracted once per (checkpoint, layer, split, pooling) and stored;
the linear probe, kNN and clustering then read the same file (as VISSL does),
so a sweep over protocols costs one forward pass over the data.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from selfsup.augment import to_input
from selfsup.backbones.adapters import rgb_input
from selfsup.backbones.base import Backbone
from selfsup.data import ImageDataset
from selfsup.precision import Precision, autocast, autocast_dtype

ArrayLike = torch.Tensor | np.ndarray
Transform = Callable[[torch.Tensor], torch.Tensor]  # uint8 (B, C, H, W) -> float (B, C, H', W')


def as_features(x: ArrayLike, name: str) -> torch.Tensor:
    """A float32 (N, D) tensor from a tensor or array; the error names ``name``."""
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D) features, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must hold floats, got dtype {t.dtype}")
    return t.float()


def as_labels(y: ArrayLike, n: int, name: str) -> torch.Tensor:
    """An int64 (N,) tensor of non-negative class indices; the error names ``name``."""
    t = torch.as_tensor(y)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) to match its features, got {tuple(t.shape)}")
    if t.is_floating_point() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices, got dtype {t.dtype}")
    t = t.long()
    if n and int(t.min()) < 0:
        raise ValueError(f"{name} holds a negative class index {int(t.min())}")
    return t


def pooled_size(channels: int, height: int, width: int, pool_to: int) -> tuple[int, int]:
    """Spatial size (h, w) that brings channels * h * w closest to ``pool_to``.

    The per-layer benchmark of Zhang et al. 2016 / Goyal et al. 2019 average-pools
    each conv map to about 9k dimensions before the linear probe so that layers
    of different sizes are compared at equal probe capacity. The aspect ratio is
    kept and the map is never upsampled.
    """
    if pool_to < 1:
        raise ValueError(f"pool_to must be >= 1, got {pool_to}")
    scale = math.sqrt(pool_to / (channels * height * width))
    return max(1, min(height, round(height * scale))), max(1, min(width, round(width * scale)))


def _pool_flat(feat: torch.Tensor, pool_to: int | None) -> torch.Tensor:
    """Adaptive-average-pool a (B, C, H, W) map to ~pool_to dims and flatten; other shapes pass."""
    if pool_to is None or feat.ndim != 4:
        return feat
    size = pooled_size(feat.shape[1], feat.shape[2], feat.shape[3], pool_to)
    return F.adaptive_avg_pool2d(feat.float(), size).flatten(1)  # (B, C*h*w)


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    images: ArrayLike,
    transform: Transform,
    *,
    layers: tuple[str, ...] = ("pre_logits",),
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    precision: Precision = "auto",
    channels_last: bool = True,
    pool_to: int | None = None,
    progress: bool | None = None,
) -> dict[str, torch.Tensor]:
    """Features of every image for each layer in ``layers``, float32 on the CPU.

    Args:
        backbone: has ``features(x, names) -> {name: tensor}`` (see backbones/base.py);
            must already live on ``device``. Run in eval mode, its mode is restored after.
        images: uint8 (N, H, W, C) array (a memmap is read batch by batch) or tensor.
        transform: uint8 (B, C, H, W) on ``device`` -> float input of the backbone.
        precision: ``"bf16"`` autocasts; ``"auto"`` (the default) where the hardware runs bf16 fast
            (``selfsup.precision``).
        channels_last: feed the backbone channels-last inputs (faster convolutions on CPUs and GPUs).
        pool_to: spatial (B, C, H, W) layers are average-pooled to about this many
            dims and flattened to (N, C*h*w); None keeps them (N, C, H, W).
        progress: show a progress bar; None shows it for long runs on a terminal.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, C), got shape {tuple(images.shape)}")
    if images.dtype not in (np.uint8, torch.uint8):
        raise ValueError(f"images must be uint8 (N, H, W, C), got dtype {images.dtype}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    amp = autocast_dtype(precision, device)
    param = next(backbone.parameters(), None)
    if param is not None and param.device.type != device.type:
        raise ValueError(f"backbone is on {param.device} but device={device}; move it first")

    n = images.shape[0]
    n_batches = math.ceil(n / batch_size)
    show = progress if progress is not None else (n_batches >= 20 and sys.stderr.isatty())
    out: dict[str, torch.Tensor] = {}
    was_training = backbone.training
    backbone.eval()
    try:
        for start in tqdm(range(0, n, batch_size), total=n_batches, disable=not show, desc="features"):
            # a writable copy (memmaps are read-only)
            batch = torch.as_tensor(np.array(images[start : start + batch_size]))
            batch = batch.to(device, non_blocking=True).permute(0, 3, 1, 2)  # (B, C, H, W) uint8
            x = transform(batch)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                feats = backbone.features(x, tuple(layers))
            for name in layers:
                if name not in feats:
                    raise KeyError(f"backbone returned no feature {name!r}; it has {sorted(feats)}")
                f = _pool_flat(feats[name], pool_to).float().cpu()
                if name not in out:
                    out[name] = torch.empty((n, *f.shape[1:]), dtype=torch.float32)
                out[name][start : start + f.shape[0]] = f
    finally:
        backbone.train(was_training)
    return out


def pooled_features(backbone: Backbone, pool_to: int | None, device: str | torch.device = "cpu",
                    precision: Precision = "auto", size: int | None = None, batch_size: int = 512,
                    channels_last: bool = True) -> Callable[[ImageDataset, tuple[str, ...]], dict[str, torch.Tensor]]:
    """``extract(dataset, layers) -> {layer: (N, D)}``, every requested layer read in one pass over the images
    through the evaluation transform (an L-only encoder wrapped to read it, ``rgb_input``)."""
    def extract(dataset: ImageDataset, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        transform = partial(to_input, mean=dataset.mean, std=dataset.std, size=size)
        return extract_features(rgb_input(backbone, dataset.mean, dataset.std).to(device), dataset.images, transform,
                                layers=tuple(layers), batch_size=batch_size, device=device, precision=precision,
                                channels_last=channels_last, pool_to=pool_to)
    return extract


def backbone_features(backbone: Backbone, dataset: ImageDataset, size: int | None, device: torch.device | str = "cpu",
                      batch_size: int = 512, precision: Precision = "auto") -> torch.Tensor:
    """Pre-logits (N, D) of ``dataset`` through the evaluation transform."""
    return pooled_features(backbone, None, device, precision, size, batch_size)(dataset, ("pre_logits",))["pre_logits"]


def pixel_features(dataset: ImageDataset, mean, std) -> torch.Tensor:
    """Raw pixels (N, H*W*C), standardized per channel: the baseline every representation must beat."""
    x = torch.from_numpy(np.array(dataset.images)).float().div_(255)  # (N, H, W, C); a copy: the cache is read-only
    return ((x - torch.tensor(mean)) / torch.tensor(std)).flatten(1)


_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=+-]*$")


def file_digest(path: str | os.PathLike, length: int = 16) -> str:
    """Hex SHA-256 prefix of a file's bytes: a cache key that changes when a checkpoint does."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


class FeatureCache:
    """Features stored as ``root/<run>/<split>/<layer>__pool<pool_to>.npy``, float32.

    ``run`` identifies the weights (a run id or ``file_digest`` of a checkpoint).
    Writes go to a temporary file renamed into place, so a killed job or two
    jobs writing the same key never leave a half-written file behind.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, run: str, layer: str, split: str, pool_to: int | None = None) -> Path:
        for field, value in (("run", run), ("layer", layer), ("split", split)):
            if not isinstance(value, str) or not _SAFE_KEY.match(value):
                raise ValueError(
                    f"feature cache {field}={value!r} must be a non-empty name of letters, digits and ._=+-"
                )
        if pool_to is not None and (not isinstance(pool_to, int) or pool_to < 1):
            raise ValueError(f"feature cache pool_to must be a positive int or None, got {pool_to!r}")
        pool = "none" if pool_to is None else str(pool_to)
        return self.root / run / split / f"{layer}__pool{pool}.npy"

    def get(self, run: str, layer: str, split: str, pool_to: int | None = None) -> torch.Tensor | None:
        """The stored features, or None when this key was never stored."""
        path = self.path(run, layer, split, pool_to)
        if not path.exists():
            return None
        return torch.from_numpy(np.load(path))

    def put(self, run: str, layer: str, split: str, pool_to: int | None, feats: torch.Tensor) -> Path:
        """Store ``feats`` atomically and return the file's path."""
        path = self.path(run, layer, split, pool_to)
        path.parent.mkdir(parents=True, exist_ok=True)
        array = torch.as_tensor(feats).detach().float().cpu().numpy()
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, array)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def get_or_extract(
        self,
        run: str,
        split: str,
        layers: Iterable[str],
        pool_to: int | None,
        extract: Callable[[tuple[str, ...]], dict[str, torch.Tensor]],
    ) -> dict[str, torch.Tensor]:
        """Cached features of ``layers``; ``extract(missing_layers)`` computes the rest in one pass."""
        layers = tuple(layers)
        found = {name: self.get(run, name, split, pool_to) for name in layers}
        missing = tuple(name for name, f in found.items() if f is None)
        if missing:
            fresh = extract(missing)
            for name in missing:
                if name not in fresh:
                    raise KeyError(f"extract returned no features for layer {name!r}")
                self.put(run, name, split, pool_to, fresh[name])
                found[name] = fresh[name].float().cpu()
        return found
