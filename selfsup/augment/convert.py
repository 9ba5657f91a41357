"""How a stored uint8 image becomes a network input: the one place that decides it.

Every backbone takes 3 channels. Grey images (C=1) stay 1-channel through all
the pixel work (4x cheaper for the colour ops that make sense on grey) and
become 3 channels only in the final normalisation, which broadcasts them.
Both the evaluation transform (``to_input``) and the training views
(``ViewAugment``) end with ``normalize_to_3ch``, so the two cannot drift apart.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def check_images(images: torch.Tensor, what: str = "images") -> None:
    """Raise ValueError unless ``images`` is a (B, C, H, W) uint8 batch with C in {1, 3}."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(f"{what} must be uint8 (B, C, H, W), got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"{what} must be (B, C, H, W) with C in {{1, 3}}, got shape {tuple(images.shape)}")


def channel_stats(values: Sequence[float], name: str, positive: bool = False) -> tuple[float, float, float]:
    """Per-channel mean or std as 3 floats; a single value is used for every channel."""
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = (values,)
    if not isinstance(values, (tuple, list)) or len(values) not in (1, 3):
        raise ValueError(f"{name} must hold 1 or 3 numbers, got {values!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{name} must hold numbers, got {values!r}")
        if positive and not v > 0:
            raise ValueError(f"{name} values must be > 0, got {values!r}")
    vals = tuple(float(v) for v in values)
    return vals * 3 if len(vals) == 1 else vals  # type: ignore[return-value]


def normalize_to_3ch(
    x: torch.Tensor,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """(x - mean) / std for x (B, C, H, W) in [0, 1] with C in {1, 3}; returns a new (B, 3, H, W).

    A grey channel is broadcast against the 3 per-channel statistics, so the
    expansion to 3 channels costs nothing beyond writing the output (into
    ``out`` when given).
    """
    scale, shift = _affine_constants(mean, std, x.device, x.dtype)  # (1, 3, 1, 1) each
    return torch.addcmul(shift, x, scale, out=out)  # (B, 3, H, W)


@functools.lru_cache(maxsize=64)
def _affine_constants(
    mean: tuple[float, float, float], std: tuple[float, float, float], device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """1/std and -mean/std as (1, 3, 1, 1) tensors, made once per device (called per batch chunk)."""
    scale = torch.tensor([1.0 / s for s in std], dtype=dtype).view(1, 3, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], dtype=dtype).view(1, 3, 1, 1)
    return scale.to(device), shift.to(device)


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 in [0, 1], same shape and device."""
    return images.to(torch.float32).mul_(1.0 / 255.0)


def resize_center(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so the shorter side is ``size`` (bilinear, antialiased), then centre-crop to size x size.

    For square images (every dataset we ship) this is a plain resize.
    """
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if h != w:
        short = min(h, w)
        new_h, new_w = max(size, round(h * size / short)), max(size, round(w * size / short))
    else:
        new_h = new_w = size
    x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return x[:, :, top : top + size, left : left + size]


def to_input(
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    size: int | None = None,
) -> torch.Tensor:
    """Deterministic evaluation transform: uint8 (B, C, H, W) -> normalised float (B, 3, S, S).

    Runs on the images' device. Grey is replicated to 3 channels; ``size``
    (optional) resizes the shorter side with antialiasing and centre-crops;
    ``mean``/``std`` hold 1 or 3 values (one value applies to every channel).
    """
    check_images(images)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise ValueError(f"size must be a positive int or None, got {size!r}")
    mean3 = channel_stats(mean, "mean")
    std3 = channel_stats(std, "std", positive=True)
    x = to_unit_float(images)  # (B, C, H, W), C in {1, 3}
    if size is not None:
        x = resize_center(x, size)
    return normalize_to_3ch(x, mean3, std3)  # (B, 3, S, S)
