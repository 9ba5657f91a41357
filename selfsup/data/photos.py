"""A small offline colour data set: random crops of the photos two Python packages ship.

Colorization needs colour photos, and nothing may be downloaded at run time.
scikit-image installs a few photos inside its package (the ones ``skimage.data``
loads without pooch) and foolbox 20 ImageNet validation images (512 px). This
reader cuts a fixed, seeded set of random square crops from them, resized to
32 px. The test split is cut from photos the training split never sees (the cat
and the last four ImageNet images), so pretext scores on it are held out.
Labels are the index of the source photo (for sanity checks, not a benchmark).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from selfsup.data.dataset import ImageDataset, resize_image
from selfsup.data.files import check_split
from selfsup.registry import InputError

_IMAGENET = ("imagenet_00_243", "imagenet_01_559", "imagenet_02_438", "imagenet_03_990", "imagenet_04_949",
             "imagenet_05_853", "imagenet_06_609", "imagenet_07_609", "imagenet_08_915", "imagenet_09_455",
             "imagenet_10_541", "imagenet_11_630", "imagenet_12_741", "imagenet_13_471", "imagenet_14_129",
             "imagenet_15_99", "imagenet_16_251", "imagenet_17_22", "imagenet_18_317", "imagenet_19_305")
TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "motorcycle_left", *_IMAGENET[:16])
TEST_PHOTOS = ("chelsea", *_IMAGENET[16:])  # held out
CROPS = {"train": 4096, "test": 1024}
NATIVE_SIZE = 32
CROP_SIDE = (48, 160)  # side of each square crop in the photo's pixels, drawn uniformly
_SEED = {"train": 0, "test": 1}


def photo(name: str) -> np.ndarray:
    """The uint8 (H, W, 3) photo ``name`` from scikit-image's or foolbox's installed data folder (never downloaded)."""
    package = "foolbox" if name.startswith("imagenet") else "skimage"
    spec = importlib.util.find_spec(package)  # finds the folder without importing the package
    if spec is None or spec.origin is None:
        raise ImportError(f"the 'photos' data set needs {package} installed for its bundled images "
                          "(pip install 'selfsup[photos]')")
    folder = Path(spec.origin).parent / "data"
    path = next((p for p in (folder / f"{name}.png", folder / f"{name}.jpg") if p.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"{folder} lacks {name}.png/.jpg; 'photos' needs the images {package} installs")
    return np.asarray(Image.open(path).convert("RGB"))


def read_photos(root: str | Path | None, split: str, resolution: int | None) -> ImageDataset:
    """Seeded random crops of the bundled photos: 4096 for "train", 1024 for "test", 32 px unless ``resolution``."""
    check_split("photos", split, tuple(CROPS))
    if root is not None:
        raise InputError(f"photos reads scikit-image's bundled images and takes no root, got root={str(root)!r}")
    names = TRAIN_PHOTOS if split == "train" else TEST_PHOTOS
    size = resolution or NATIVE_SIZE
    rng = np.random.RandomState(_SEED[split])
    images = np.empty((CROPS[split], size, size, 3), dtype=np.uint8)
    labels = np.empty(CROPS[split], dtype=np.int64)
    pictures = [photo(n) for n in names]
    for i in range(CROPS[split]):
        k = i % len(pictures)  # the same number of crops from each photo
        pic = pictures[k]
        side = rng.randint(CROP_SIDE[0], min(CROP_SIDE[1], *pic.shape[:2]) + 1)
        top = rng.randint(0, pic.shape[0] - side + 1)
        left = rng.randint(0, pic.shape[1] - side + 1)
        crop = Image.fromarray(pic[top : top + side, left : left + side])
        images[i] = np.asarray(resize_image(crop, size))
        labels[i] = k
    return ImageDataset(images, labels, list(names), name=f"photos/{split}", source="scikit-image data")
