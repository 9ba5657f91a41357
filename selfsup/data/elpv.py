"""ELPV: 2,624 electroluminescence images of solar cells (300x300 grey) graded for defects.

Buerhop-Lutz et al. 2018 / Deitsch et al. 2019, shipped on PyPI as
``elpv-dataset``. Real images from a very different domain than Fashion-MNIST,
which makes it our offline transfer target. The defect probability an expert
assigned (0, 1/3, 2/3, 1) is the class; the dataset has no official split, so a
seeded 75/25 split stratified by class and cell type (mono/poly) is used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from selfsup.data.dataset import ImageDataset, resize_image
from selfsup.registry import InputError

CLASSES = ["functional", "possibly defective", "likely defective", "defective"]


def _default_root() -> Path:
    try:
        import elpv_dataset
    except ImportError:
        raise FileNotFoundError("elpv: the dataset is not installed; run `pip install elpv-dataset` "
                                "or pass root= (the folder holding labels.csv and images/)") from None
    return Path(elpv_dataset.__file__).parent / "data"


def read_elpv(root: str | Path | None, split: str, resolution: int | None) -> ImageDataset:
    if split not in ("train", "test"):
        raise InputError(f"elpv: split must be 'train' or 'test', got {split!r}")
    root = Path(root) if root is not None else _default_root()
    labels_csv = root / "labels.csv"
    if not labels_csv.is_file():
        raise FileNotFoundError(f"elpv: {labels_csv} not found")
    rows = [line.split() for line in labels_csv.read_text().splitlines() if line.strip()]
    try:
        paths, probs, kinds = zip(*((r[0], float(r[1]), r[2]) for r in rows))
    except (IndexError, ValueError):
        raise InputError(f"elpv: {labels_csv} must hold 'path probability type' rows") from None
    labels = np.rint(np.asarray(probs) * 3).astype(np.int64)  # (N,) in 0..3
    strata = labels * 2 + (np.asarray(kinds) == "poly")
    rng = np.random.default_rng(0)
    test = np.zeros(len(labels), dtype=bool)
    for s in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == s))
        test[members[: round(0.25 * len(members))]] = True
    keep = np.flatnonzero(test if split == "test" else ~test)
    images = []
    for i in keep:
        with Image.open(root / paths[i]) as img:
            img = img.convert("L")
            images.append(np.asarray(resize_image(img, resolution) if resolution else img))
    return ImageDataset(np.stack(images)[..., None], labels[keep], CLASSES, name=f"elpv/{split}", source=str(root))
