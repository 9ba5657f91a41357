"""One entry point, ``load_dataset(name, ...)``, over every reader, plus the prepare step.

Each reader takes ``(root, split, resolution)`` and returns an ImageDataset at
that resolution; ``root=None`` means the reader's default location (if it has one).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from selfsup.data.cache import DEFAULT_CACHE_DIR, cache_path, read_cache, write_cache
from selfsup.data.cifar import read_cifar10, read_cifar100, read_cifar100_coarse
from selfsup.data.dataset import ImageDataset
from selfsup.data.elpv import read_elpv
from selfsup.data.folder import read_folder
from selfsup.data.idx import FASHION_MNIST_ROOT, MNIST_ROOT, read_fashion_mnist, read_mnist
from selfsup.data.photos import read_photos
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
) -> ImageDataset:
    """Load a dataset by name; with ``cache_dir``, through the uint8 memory-mapped cache.

    Args:
        name: one of ``dataset_names()``.
        root: the dataset's folder; None uses the default location where one exists.
        split: "train", "test", and for STL-10 also "unlabeled" and "train+unlabeled".
        resolution: square side to resize to (antialiased); None keeps the native size.
        cache_dir: if given, the cache there is used, and written first when absent.
    """
    reader = DATASETS.get(name)
    _check_resolution(resolution)
    if cache_dir is None:
        return reader(root, split, resolution)
    return read_cache(prepare(name, root, split, resolution, cache_dir))


def prepare(
    name: str,
    root: str | Path | None = None,
    split: str = "train",
    resolution: int | None = None,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
    overwrite: bool = False,
) -> Path:
    """Decode a dataset once into ``cache_dir`` and return the cache folder (kept if already there)."""
    reader = DATASETS.get(name)
    _check_resolution(resolution)
    root_or_default = root if root is not None else _DEFAULT_ROOTS.get(name)
    key_root = None if root_or_default is None else Path(root_or_default).expanduser().resolve()
    path = cache_path(cache_dir, name, split, resolution, key_root)
    if (path / "meta.json").is_file() and not overwrite:
        return path
    dataset = reader(root, split, resolution)
    meta = {
        "dataset": name,
        "split": split,
        "resolution": resolution,
        "root": None if key_root is None else str(key_root),
    }
    if overwrite and path.exists():
        shutil.rmtree(path)
    return write_cache(dataset, path, meta)
