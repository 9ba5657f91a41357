"""MNIST and Fashion-MNIST from their IDX files (gzipped or plain).

IDX (LeCun's format): two zero bytes, a type code (0x08 = uint8), the rank,
then one big-endian uint32 per dimension, then the data in C order.
"""
from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np

from selfsup.data.dataset import ImageDataset, resized
from selfsup.data.files import check_split, find_root, first_existing
from selfsup.registry import InputError

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
MNIST_ROOT = "/usr/share/datasets/mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}  # fmt: skip
_PREFIX = {"train": "train", "test": "t10k"}
_DEFLATE_MAX_RATIO = 1032  # no deflate stream inflates more than ~1032-fold (RFC 1951 block limits)


def read_idx(path: Path) -> np.ndarray:
    """The array stored in one IDX file; ValueError naming the file if it is not one.

    The header is checked before the data is read, and no more than the header's size is read, so a
    small .gz that inflates to gigabytes (a "zip bomb") is refused without allocating them.
    """
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            magic = f.read(4)
            if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES or magic[3] == 0:
                raise InputError(
                    f"{path}: not an IDX file: magic number 0x{magic.hex()}, expected 0x0000 then a type code "
                    f"and rank (0x00000803 for images, 0x00000801 for labels)"
                )
            rank, dtype = magic[3], _IDX_TYPES[magic[2]]
            header = f.read(4 * rank)
            if len(header) < 4 * rank:
                raise InputError(f"{path}: IDX header truncated: rank {rank} needs {4 + 4 * rank} bytes, "
                                 f"file has {4 + len(header)}")
            dims = struct.unpack(f">{rank}I", header)
            expected = math.prod(dims) * dtype.itemsize
            stored = path.stat().st_size - (0 if path.suffix == ".gz" else 4 + 4 * rank)
            if expected > (_DEFLATE_MAX_RATIO * stored if path.suffix == ".gz" else stored):
                raise InputError(f"{path}: IDX header says shape {dims} ({expected} bytes of data), more than "
                                 f"the {stored}-byte file can hold")
            body = f.read(expected)
            extra = f.read(1)
    except (OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise InputError(f"{path}: cannot read IDX file ({e})") from e
    if len(body) != expected or extra:
        held = f"{len(body)}" if not extra else f"more than {expected}"
        raise InputError(f"{path}: IDX header says shape {dims} ({expected} bytes of data), file holds {held}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _idx_file(folder: Path, split: str, kind: str, rank: int) -> Path:
    stem_dash, stem_dot = f"{_PREFIX[split]}-{kind}-idx{rank}-ubyte", f"{_PREFIX[split]}-{kind}.idx{rank}-ubyte"
    names = [stem_dash + ".gz", stem_dash, stem_dot + ".gz", stem_dot]
    return first_existing(folder, names, f"{split} {kind}")


def _read_idx_pair(name: str, folder: Path, split: str, classes: list[str]) -> ImageDataset:
    images_path, labels_path = _idx_file(folder, split, "images", 3), _idx_file(folder, split, "labels", 1)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise InputError(
            f"{images_path}: expected uint8 images of rank 3 (N, H, W), got {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1:
        raise InputError(f"{labels_path}: expected labels of rank 1 (N,), got shape {labels.shape}")
    if len(labels) != len(images):
        raise InputError(f"{labels_path}: {len(labels)} labels, but {images_path} holds {len(images)} images")
    return ImageDataset(images[..., None], labels.astype(np.int64), classes, name, str(images_path))


def read_fashion_mnist(root: str | Path | None, split: str, resolution: int | None) -> ImageDataset:
    """Zalando's 28x28 grey clothing images: 60k train, 10k test, 10 classes."""
    check_split("fashion_mnist", split, ("train", "test"))
    folder = find_root("fashion_mnist", root, FASHION_MNIST_ROOT, "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]")
    return resized(_read_idx_pair("fashion_mnist", folder, split, FASHION_MNIST_CLASSES), resolution)


def read_mnist(root: str | Path | None, split: str, resolution: int | None) -> ImageDataset:
    """LeCun's 28x28 grey digits: 60k train, 10k test, 10 classes."""
    check_split("mnist", split, ("train", "test"))
    folder = find_root("mnist", root, MNIST_ROOT, "{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]")
    return resized(_read_idx_pair("mnist", folder, split, [str(d) for d in range(10)]), resolution)
