"""The data formats written independently of selfsup's readers, so the tests can check those against them."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray, magic: bytes | None = None) -> Path:
    header = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    data = header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) -> (N, 3072): the red plane, then green, then blue, each row by row."""
    return np.stack([np.concatenate([img[:, :, c].reshape(-1) for c in range(3)]) for img in images])


def pattern_images(n: int, side: int, seed: int = 0) -> np.ndarray:
    """Random RGB images plus a marker that breaks every symmetry: top-left red, row 0 / col 1 green."""
    images = np.random.default_rng(seed).integers(0, 200, (n, side, side, 3), dtype=np.uint8)
    images[:, 0, 0] = (255, 0, 0)
    images[:, 0, 1] = (0, 255, 0)
    return images


def write_cifar10(folder: Path, per_batch: int = 3) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    images = pattern_images(6 * per_batch, 32)
    labels = np.arange(6 * per_batch) % 10
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        part = slice(k * per_batch, (k + 1) * per_batch)
        batch = {b"data": cifar_rows(images[part]), b"labels": labels[part].tolist(), b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_cases_per_batch": per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return images, labels


def write_stl10(folder: Path, n_train: int = 4, n_test: int = 3, n_unlabeled: int = 5) -> dict[str, np.ndarray]:
    """Each image written column-major (Fortran order), as STL-10's README describes its binaries."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for seed, (split, n) in enumerate([("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)]):
        images = pattern_images(n, 96, seed=seed)
        (folder / f"{split}_X.bin").write_bytes(b"".join(img.tobytes(order="F") for img in images))
        out[split] = images
        if split != "unlabeled":
            labels = (np.arange(n) % 10) + 1  # STL-10 labels are 1..10
            (folder / f"{split}_y.bin").write_bytes(labels.astype(np.uint8).tobytes())
            out[split + "_y"] = labels - 1
    return out


def write_image_folder(folder: Path, classes: dict[str, int], side: int = 20, ext: str = "png") -> None:
    rng = np.random.default_rng(0)
    for cls, count in classes.items():
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / cls / f"{i}.{ext}")
