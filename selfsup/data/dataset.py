"""The in-memory (or memory-mapped) image dataset every reader returns, and array helpers.

Images are kept as uint8 (N, H, W, C) the whole way to the loader: four times
smaller than float, and the layout PIL and every file format produce. The
conversion to float happens on the training device, per batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from selfsup.registry import InputError

STATS_MAX_IMAGES = 10_000  # mean/std are estimated from this many evenly spaced images
MAX_IMAGE_PIXELS = 1 << 26  # ~67 megapixels: larger files are refused from their header (docs/data.md#limits)
_WIDE_GREY = {"I", "I;16", "I;16B", "I;16L", "I;16N"}  # 16-bit (and 32-bit integer) grey: PNG, TIFF
_STATS_CHUNK = 1024


@dataclass(eq=False)
class ImageDataset:
    """Square uint8 images with optional integer labels.

    ``images`` may be an ``np.memmap`` (or a strided view of one): nothing here
    reads it whole. ``labels`` is None for unlabelled data (STL-10 unlabeled,
    flat image folders). ``skipped`` lists files a reader could not decode.
    """

    images: np.ndarray  # (N, H, W, C) uint8, C in {1, 3}, H == W
    labels: np.ndarray | None = None  # (N,) int64
    classes: list[str] | None = None
    name: str = "dataset"
    source: str = ""
    skipped: tuple[str, ...] = ()
    _stats: tuple[list[float], list[float]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        images = self.images
        if not isinstance(images, np.ndarray):
            raise InputError(f"{self.name}: images must be a numpy array, got {type(images).__name__}")
        if images.dtype != np.uint8:
            raise InputError(f"{self.name}: images.dtype must be uint8, got {images.dtype}")
        if images.ndim != 4 or images.shape[3] not in (1, 3):
            raise InputError(f"{self.name}: images.shape must be (N, H, W, C) with C in {{1, 3}}, got {images.shape}")
        if images.shape[1] != images.shape[2]:
            raise InputError(
                f"{self.name}: images must be square, got H x W = {images.shape[1]} x {images.shape[2]}; "
                "resize them first (load_dataset and prepare take resolution= to resize and centre-crop)"
            )
        if len(images) == 0:
            raise InputError(f"{self.name}: dataset is empty (0 images) from {self.source or 'arrays'}")
        if self.labels is not None:
            self.labels = _check_labels(self.labels, len(images), self.classes, self.name)
        if self.classes is not None:
            self.classes = [str(c) for c in self.classes]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        n_cls = "unlabelled" if self.labels is None else f"{self.num_classes} classes"
        return (
            f"ImageDataset({self.name!r}, {len(self)} x {self.resolution}x{self.resolution}x{self.channels}, {n_cls})"
        )

    @property
    def channels(self) -> int:
        return self.images.shape[3]

    @property
    def resolution(self) -> int:
        return self.images.shape[1]

    @property
    def num_classes(self) -> int:
        """len(classes) when known, else 1 + the largest label, 0 when unlabelled."""
        if self.classes is not None:
            return len(self.classes)
        return 0 if self.labels is None else int(self.labels.max()) + 1

    @property
    def mean(self) -> list[float]:
        """Per-channel mean of pixel values scaled to [0, 1]."""
        return self._channel_stats()[0]

    @property
    def std(self) -> list[float]:
        """Per-channel standard deviation of pixel values scaled to [0, 1]."""
        return self._channel_stats()[1]

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageDataset:
        """A new dataset holding copies of the chosen images (in the given order)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"{self.name}: subset indices must lie in [0, {len(self)}), got {idx.min()}..{idx.max()}")
        labels = None if self.labels is None else self.labels[idx]
        return ImageDataset(np.asarray(self.images[idx]), labels, self.classes, self.name, self.source)

    def _channel_stats(self) -> tuple[list[float], list[float]]:
        if self._stats is None:
            n = len(self)
            idx = np.unique(np.linspace(0, n - 1, min(n, STATS_MAX_IMAGES)).round().astype(np.int64))
            total = np.zeros(self.channels)
            total_sq = np.zeros(self.channels)
            for start in range(0, len(idx), _STATS_CHUNK):
                chunk = np.asarray(self.images[idx[start : start + _STATS_CHUNK]], dtype=np.float64) / 255.0
                total += chunk.sum(axis=(0, 1, 2))
                total_sq += np.square(chunk).sum(axis=(0, 1, 2))
            count = len(idx) * self.resolution * self.resolution
            mean = total / count
            std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
            self._stats = ([float(m) for m in mean], [float(s) for s in std])
        return self._stats


def _check_labels(labels: np.ndarray, n: int, classes: list[str] | None, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise InputError(f"{name}: labels must have shape ({n},) to match {n} images, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{name}: labels must be integers, got dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise InputError(f"{name}: labels must be >= 0, found label {low}")
    if classes is not None and high >= len(classes):
        raise InputError(f"{name}: label {high} is out of range for {len(classes)} classes")
    return labels


def from_arrays(
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | Sequence[int] | None = None,
    classes: Sequence[str] | None = None,
    name: str = "arrays",
) -> ImageDataset:
    """Wrap arrays already in memory.

    ``images`` may be (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3},
    uint8 in [0, 255] or float in [0, 1]. A trailing axis of size 1 or 3 is
    read as channels first; (N, 3, 3, 3) is therefore taken as (N, H, W, C).
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    elif arr.ndim == 4 and arr.shape[3] not in (1, 3) and arr.shape[1] in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    elif arr.ndim != 4:
        raise InputError(f"{name}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {arr.shape}")
    if arr.ndim == 4 and arr.shape[3] not in (1, 3):
        raise InputError(f"{name}: cannot find a channel axis of size 1 or 3 in images of shape {np.shape(images)}")
    if np.issubdtype(arr.dtype, np.floating):
        low, high = float(arr.min()), float(arr.max())
        if not (0.0 <= low and high <= 1.0):  # also catches NaN
            raise InputError(f"{name}: float images must lie in [0, 1], found values in [{low:.4g}, {high:.4g}]")
        arr = np.round(arr * 255.0).astype(np.uint8)
    elif arr.dtype != np.uint8:
        raise InputError(f"{name}: images must be uint8 or float in [0, 1], got dtype {arr.dtype}")
    labels_arr = None if labels is None else np.asarray(labels)
    return ImageDataset(
        np.ascontiguousarray(arr), labels_arr, None if classes is None else list(classes), name, "arrays"
    )


def check_pixels(img: Image.Image, where: str) -> None:
    """Refuse an image larger than ``MAX_IMAGE_PIXELS`` before it is decoded (PIL reads the header only)."""
    w, h = img.size
    if w * h > MAX_IMAGE_PIXELS:
        raise InputError(f"{where}: {w}x{h} is {w * h / 1e6:.0f} megapixels, over the limit of "
                         f"{MAX_IMAGE_PIXELS / 1e6:.0f} (a decompression bomb, or resize it first)")


def to_mode(img: Image.Image, mode: str) -> Image.Image:
    """``img`` as "L" or "RGB"; 16-bit grey is scaled to 8 bits (PIL's own convert clips it to near white)."""
    if img.mode in _WIDE_GREY:
        wide = np.asarray(img).astype(np.float64)  # (H, W)
        top = 65535.0 if wide.max(initial=0) <= 65535 else float(wide.max())
        img = Image.fromarray(np.round(np.clip(wide, 0, None) * (255.0 / top)).astype(np.uint8), "L")
    return img if img.mode == mode else img.convert(mode)


def resize_image(img: Image.Image, resolution: int) -> Image.Image:
    """Resize the shorter side to ``resolution`` (antialiased bicubic), then centre-crop a square."""
    w, h = img.size
    if (w, h) == (resolution, resolution):
        return img
    scale = resolution / min(w, h)
    new_w, new_h = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - resolution) // 2, (new_h - resolution) // 2
    return img.crop((left, top, left + resolution, top + resolution))


def resized(dataset: ImageDataset, resolution: int | None) -> ImageDataset:
    """The dataset at ``resolution`` x ``resolution`` (itself when already that size or None)."""
    if resolution is None or resolution == dataset.resolution:
        return dataset
    if resolution < 1:
        raise InputError(f"{dataset.name}: resolution must be a positive integer, got {resolution}")
    out = np.empty((len(dataset), resolution, resolution, dataset.channels), dtype=np.uint8)
    for i in range(len(dataset)):
        pixels = np.asarray(dataset.images[i])  # (H, W, C)
        img = Image.fromarray(pixels[:, :, 0] if dataset.channels == 1 else pixels)
        out[i] = np.asarray(resize_image(img, resolution)).reshape(resolution, resolution, -1)
    return ImageDataset(out, dataset.labels, dataset.classes, dataset.name, dataset.source, dataset.skipped)
