"""CIFAR-10 and CIFAR-100 from the "python version" pickle batches.

Each batch is a dict with ``data`` (N, 3072) uint8, every row a 3x32x32 image
stored channel-first, and ``labels`` (CIFAR-10) or ``fine_labels`` /
``coarse_labels`` (CIFAR-100). Pickles can run code when loaded, so the
unpickler below only resolves the few numpy names these files use.
"""
from __future__ import annotations

import _compat_pickle
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from selfsup.data.dataset import ImageDataset, resized
from selfsup.data.files import check_split, find_root, first_existing
from selfsup.registry import InputError

_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "bytearray"),
}  # fmt: skip


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Protocol-2 pickles written by Python 3 store bytes as ``_codecs.encode(text, "latin1")``: that call only."""
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refers to _codecs.encode with {encoding!r}, which a CIFAR batch never holds")
    return text.encode("latin1")


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (__builtin__, copy_reg) of protocols 0-2, mapped as pickle itself maps them
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refers to {module}.{name}, which a CIFAR batch never holds")
        return super().find_class(module, name)


def load_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR batch as a dict with str keys; ValueError naming the file if it is not one."""
    try:
        with open(path, "rb") as f:
            obj = _ArrayOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
        raise InputError(f"{path}: not a CIFAR python pickle ({e})") from e
    if not isinstance(obj, dict):
        raise InputError(f"{path}: not a CIFAR python pickle (holds a {type(obj).__name__}, expected a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch_arrays(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = load_pickle(path)
    missing = [k for k in ("data", label_key) if k not in batch]
    if missing:
        raise InputError(f"{path}: CIFAR batch lacks key(s) {missing}; found {sorted(batch)}")
    data, labels = np.asarray(batch["data"]), np.asarray(batch[label_key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise InputError(f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (len(data),):
        raise InputError(f"{path}: {labels.size} labels under {label_key!r}, but 'data' holds {len(data)} images")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # (N, C, H, W) rows -> (N, H, W, C)
    return images, labels.astype(np.int64)


def _names(meta_path: Path, key: str) -> list[str]:
    meta = load_pickle(meta_path)
    if key not in meta:
        raise InputError(f"{meta_path}: CIFAR meta lacks key {key!r}; found {sorted(meta)}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta[key]]


def _folder(name: str, root: str | Path | None, subdir: str, holds: str) -> Path:
    folder = find_root(name, root, None, holds)
    return folder / subdir if (folder / subdir).is_dir() else folder


def read_cifar10(root: str | Path | None, split: str, resolution: int | None) -> ImageDataset:
    """Krizhevsky's CIFAR-10: 50k train, 10k test, 32x32 RGB, 10 classes."""
    check_split("cifar10", split, ("train", "test"))
    folder = _folder("cifar10", root, "cifar-10-batches-py", "data_batch_1..5, test_batch and batches.meta")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    files = [first_existing(folder, [n], "cifar10") for n in names]
    parts = [_batch_arrays(f, "labels") for f in files]
    classes = _names(first_existing(folder, ["batches.meta"], "cifar10 class names"), "label_names")
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return resized(ImageDataset(images, labels, classes, "cifar10", str(folder)), resolution)


def _read_cifar100(
    name: str, root: str | Path | None, split: str, resolution: int | None, granularity: str
) -> ImageDataset:
    check_split(name, split, ("train", "test"))
    folder = _folder(name, root, "cifar-100-python", "train, test and meta")
    images, labels = _batch_arrays(first_existing(folder, [split], name), f"{granularity}_labels")
    classes = _names(first_existing(folder, ["meta"], f"{name} class names"), f"{granularity}_label_names")
    return resized(ImageDataset(np.ascontiguousarray(images), labels, classes, name, str(folder)), resolution)


def read_cifar100(root: str | Path | None, split: str, resolution: int | None) -> ImageDataset:
    """CIFAR-100 with its 100 fine labels: 50k train, 10k test, 32x32 RGB."""
    return _read_cifar100("cifar100", root, split, resolution, "fine")


def read_cifar100_coarse(root: str | Path | None, split: str, resolution: int | None) -> ImageDataset:
    """CIFAR-100 labelled with its 20 coarse superclasses."""
    return _read_cifar100("cifar100_coarse", root, split, resolution, "coarse")
