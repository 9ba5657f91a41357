"""STL-10 from the ``stl10_binary`` folder (Coates et al., 2011).

``*_X.bin`` holds raw uint8 images, each 96x96x3 in column-major (Fortran)
order, i.e. a C-order (3, W, H) block; ``*_y.bin`` one uint8 label per image,
1..10. ``unlabeled_X.bin`` is 2.7 GB, so it is memory-mapped, never read whole.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from selfsup.data.dataset import ImageDataset, resized
from selfsup.data.files import check_split, find_root, first_existing
from selfsup.registry import InputError

SIDE = 96
IMAGE_BYTES = SIDE * SIDE * 3
STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
SPLITS = ("train", "test", "unlabeled")  # load_dataset joins "train+unlabeled", minus the validation rows


def read_stl_images(path: Path) -> np.ndarray:
    """A (N, 96, 96, 3) view of a memory-mapped ``*_X.bin``."""
    size = path.stat().st_size
    if size == 0 or size % IMAGE_BYTES:
        raise InputError(
            f"{path}: {size} bytes is not a positive multiple of 96*96*3 = {IMAGE_BYTES}; not an STL-10 image file"
        )
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // IMAGE_BYTES, 3, SIDE, SIDE))  # (N, C, W, H)
    return raw.transpose(0, 3, 2, 1)  # (N, H, W, C)


def read_stl_labels(path: Path, n_images: int, images_path: Path) -> np.ndarray:
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64)
    if len(labels) != n_images:
        raise InputError(f"{path}: {len(labels)} labels, but {images_path} holds {n_images} images")
    if len(labels) and (labels.min() < 1 or labels.max() > 10):
        raise InputError(f"{path}: STL-10 labels must lie in 1..10, found {labels.min()}..{labels.max()}")
    return labels - 1


def _labelled(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = first_existing(folder, [f"{split}_X.bin"], f"stl10 {split} images")
    images = read_stl_images(images_path)
    labels = read_stl_labels(
        first_existing(folder, [f"{split}_y.bin"], f"stl10 {split} labels"), len(images), images_path
    )
    return images, labels


def _class_names(folder: Path) -> list[str]:
    path = folder / "class_names.txt"
    if not path.is_file():
        return list(STL10_CLASSES)
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(names) != 10:
        raise InputError(f"{path}: expected 10 class names, found {len(names)}")
    return names


def read_stl10(root: str | Path | None, split: str, resolution: int | None) -> ImageDataset:
    """STL-10: 5k train, 8k test (10 classes), 100k unlabelled, 96x96 RGB.

    ``load_dataset(split="train+unlabeled")`` is the usual self-supervised pre-training set.
    """
    check_split("stl10", split, SPLITS)
    folder = find_root("stl10", root, None, "train_X.bin, train_y.bin, test_X.bin, test_y.bin, unlabeled_X.bin")
    if (folder / "stl10_binary").is_dir():
        folder = folder / "stl10_binary"
    name = "stl10"
    if split in ("train", "test"):
        images, labels = _labelled(folder, split)
        ds = ImageDataset(images, labels, _class_names(folder), name, str(folder))
    else:
        images = read_stl_images(first_existing(folder, ["unlabeled_X.bin"], "stl10 unlabeled images"))
        ds = ImageDataset(images, None, None, name, str(folder))
    return resized(ds, resolution)
