"""The decoded-once uint8 cache: ``images.npy`` (memory-mapped), ``labels.npy``, ``meta.json``.

Decoding JPEGs or unpickling CIFAR every epoch wastes CPU the augmentations
need; a memory-mapped ``.npy`` costs one page-cache read per batch and lets
several runs share one copy of the pixels.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from selfsup.data.dataset import ImageDataset
from selfsup.registry import InputError

DEFAULT_CACHE_DIR = Path.home() / ".cache" / "selfsup"
CACHE_VERSION = 1
_COPY_CHUNK = 2048  # images copied per step, so a 2.7 GB memmap never sits in memory whole


def cache_path(cache_dir: str | Path, name: str, split: str, resolution: int | None, root: Path | None) -> Path:
    """The folder caching (name, split, resolution, root); readable names plus a hash of all four."""
    key = json.dumps([CACHE_VERSION, name, split, resolution, str(root)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    res = "native" if resolution is None else str(resolution)
    return Path(cache_dir).expanduser() / f"{name}-{split.replace('+', '_')}-{res}-{digest}"


def write_cache(dataset: ImageDataset, path: Path, meta: dict) -> Path:
    """Write ``dataset`` to ``path`` atomically: a temporary folder renamed into place.

    A run killed mid-write leaves only a ``.tmp-*`` folder, never a half cache
    that a later run would trust. If another process finished first, its copy wins.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        n = len(dataset)
        images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=dataset.images.shape)
        for start in range(0, n, _COPY_CHUNK):
            images[start : start + _COPY_CHUNK] = dataset.images[start : start + _COPY_CHUNK]
        images.flush()
        del images
        if dataset.labels is not None:
            np.save(tmp / "labels.npy", dataset.labels)
        full_meta = {
            "version": CACHE_VERSION,
            **meta,
            "name": dataset.name,
            "source": dataset.source,
            "count": n,
            "shape": list(dataset.images.shape),
            "classes": dataset.classes,
            "skipped_count": len(dataset.skipped),
            "skipped": list(dataset.skipped),
            "mean": dataset.mean,
            "std": dataset.std,
        }
        (tmp / "meta.json").write_text(json.dumps(full_meta, indent=1))
        try:
            os.rename(tmp, path)
        except OSError:
            if not (path / "meta.json").is_file():
                raise
            shutil.rmtree(tmp)  # a concurrent prepare won the race
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_cache(path: Path) -> ImageDataset:
    """Open a cache folder; images stay on disk (``mmap_mode="r"``)."""
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is not a selfsup dataset cache (no meta.json); run prepare() first")
    meta = json.loads(meta_path.read_text())
    if meta.get("version") != CACHE_VERSION:
        raise InputError(
            f"{meta_path}: cache version {meta.get('version')}, expected {CACHE_VERSION}; delete {path} to rebuild it"
        )
    images = np.load(path / "images.npy", mmap_mode="r")
    if list(images.shape) != meta["shape"]:
        raise InputError(
            f"{path / 'images.npy'}: shape {list(images.shape)} differs from meta.json's {meta['shape']}; delete {path}"
        )
    labels = np.load(path / "labels.npy") if (path / "labels.npy").is_file() else None
    stats = (meta["mean"], meta["std"]) if "mean" in meta and "std" in meta else None
    return ImageDataset(
        images, labels, meta["classes"], meta["name"], meta["source"], tuple(meta["skipped"]), _stats=stats
    )
