"""One entry point, ``load_dataset(name, ...)``, over every reader, plus the prepare step.

Each reader takes ``(root, split, resolution)`` and returns an ImageDataset at
that resolution; ``root=None`` means the reader's default location (if it has one).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from selfsup.data.cache import DEFAULT_CACHE_DIR, cache_path, read_cache, write_cache
from selfsup.data.cifar import read_cifar10, read_cifar100, read_cifar100_coarse
from selfsup.data.dataset import ImageDataset
from selfsup.data.elpv import read_elpv
from selfsup.data.folder import read_folder
from selfsup.data.idx import FASHION_MNIST_ROOT, MNIST_ROOT, read_fashion_mnist, read_mnist
from selfsup.data.photos import read_photos
from selfsup.data.splits import CARVED, VAL_FRACTION, VAL_SEED, carve, check_test_unlocked
from selfsup.data.stl10 import read_stl10
from selfsup.registry import InputError, Registry

DATASETS = Registry("dataset")
DATASETS.register("fashion_mnist", read_fashion_mnist)
DATASETS.register("mnist", read_mnist)
DATASETS.register("cifar10", read_cifar10)
DATASETS.register("cifar100", read_cifar100)
DATASETS.register("cifar100_coarse", read_cifar100_coarse)
DATASETS.register("stl10", read_stl10)
DATASETS.register("folder", read_folder)
DATASETS.register("elpv", read_elpv)
DATASETS.register("photos", read_photos)
_DEFAULT_ROOTS = {"fashion_mnist": FASHION_MNIST_ROOT, "mnist": MNIST_ROOT}


def dataset_names() -> list[str]:
    return DATASETS.names()


def _check_resolution(resolution: int | None) -> None:
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1):
        raise InputError(f"resolution must be a positive integer or None, got {resolution!r}")


def load_dataset(
    name: str,
    root: str | Path | None = None,
    split: str = "train",
    resolution: int | None = None,
    cache_dir: str | Path | None = None,
    val_fraction: float = VAL_FRACTION,
    val_seed: int = VAL_SEED,
) -> ImageDataset:
    """Load a dataset by name; with ``cache_dir``, through the uint8 memory-mapped cache.

    Args:
        name: one of ``dataset_names()``.
        root: the dataset's folder; None uses the default location where one exists.
        split: "train" (the official training split minus the validation rows), "val" (those rows),
            "trainval" (the official training split whole), "test", a reader's own splits (STL-10's
            "unlabeled"), or parts joined by "+" ("train+unlabeled"; unlabelled when any part is).
        resolution: square side to resize to (antialiased); None keeps the native size.
        cache_dir: if given, the cache there is used, and written first when absent.
        val_fraction, val_seed: the class-balanced share of each class held out as "val", and its seed.
    """
    DATASETS.get(name)
    _check_resolution(resolution)
    if "+" in split:
        return _joined([load_dataset(name, root, part, resolution, cache_dir, val_fraction, val_seed)
                        for part in split.split("+")], split)
    check_test_unlocked(name, split)
    if cache_dir is None:
        return _read(name, root, split, resolution, val_fraction, val_seed)
    return read_cache(prepare(name, root, split, resolution, cache_dir, val_fraction=val_fraction, val_seed=val_seed))


def _read(name: str, root, split: str, resolution: int | None, val_fraction: float, val_seed: int) -> ImageDataset:
    reader = DATASETS.get(name)
    if split in CARVED:
        return carve(reader(root, "train", resolution), split, val_fraction, val_seed)
    return reader(root, "train" if split == "trainval" else split, resolution)


def _joined(parts: list[ImageDataset], split: str) -> ImageDataset:
    labelled = all(p.labels is not None for p in parts)
    images = np.concatenate([np.asarray(p.images) for p in parts])
    labels = np.concatenate([p.labels for p in parts]) if labelled else None
    return ImageDataset(images, labels, parts[0].classes if labelled else None, parts[0].name, parts[0].source,
                        tuple(s for p in parts for s in p.skipped))


def prepare(
    name: str,
    root: str | Path | None = None,
    split: str = "train",
    resolution: int | None = None,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    overwrite: bool = False,
    val_fraction: float = VAL_FRACTION,
    val_seed: int = VAL_SEED,
) -> Path:
    """Decode a dataset split once into ``cache_dir`` and return the cache folder (kept if already there)."""
    DATASETS.get(name)
    _check_resolution(resolution)
    if "+" in split:
        raise InputError(f"prepare: cache the parts of split {split!r} one at a time")
    check_test_unlocked(name, split)
    root_or_default = root if root is not None else _DEFAULT_ROOTS.get(name)
    key_root = None if root_or_default is None else Path(root_or_default).expanduser().resolve()
    key_split = f"{split}-val{val_fraction:g}-seed{val_seed}" if split in CARVED else split
    path = cache_path(cache_dir, name, key_split, resolution, key_root)
    if (path / "meta.json").is_file() and not overwrite:
        return path
    dataset = _read(name, root, split, resolution, val_fraction, val_seed)
    meta = {
        "dataset": name,
        "split": split,
        "resolution": resolution,
        "root": None if key_root is None else str(key_root),
    }
    if split in CARVED:
        meta.update(val_fraction=val_fraction, val_seed=val_seed)
    if overwrite and path.exists():
        shutil.rmtree(path)
    return write_cache(dataset, path, meta)
