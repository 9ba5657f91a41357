"""Image-folder trees: ``root/[split/]class/*.jpg`` (labelled) or ``root/[split/]*.jpg`` (unlabelled).

A labelled folder without split folders is split here, so evaluation never scores the
images its probes fit: a seeded ``HELD_OUT_FRACTION`` of each class is its "test" split,
the rest its "train" (from which "val" is carved as for any dataset). The dataset's
``source`` says so, and ``selfsup eval`` records it in eval.json.

Files that cannot be decoded are skipped, counted, listed in the dataset's
``skipped`` and reported in ONE warning: a single bad JPEG in a scraped folder
should not stop a run, but it should not pass unnoticed either.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from selfsup.data.dataset import ImageDataset, check_pixels, resize_image, to_mode
from selfsup.data.files import find_root
from selfsup.data.splits import validation_rows
from selfsup.registry import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
_SPLIT_DIRS = ("train", "test", "val")
_WARN_FIRST = 5
HELD_OUT_FRACTION, HELD_OUT_SEED = 0.2, 1234  # a folder without split folders: its "test" rows (ELPV holds out 25%)


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _split_folder(root: Path, split: str) -> tuple[Path, bool]:
    """``root/split`` when it exists, else ``root`` itself unless ``root`` is organised in other splits; and
    whether the images there are to be split into "train" and "test" rows (``root`` holds no split folders)."""
    if (root / split).is_dir():
        return root / split, False
    present = [d for d in _SPLIT_DIRS if (root / d).is_dir()]
    if present:
        raise FileNotFoundError(f"folder: {root} has split folder(s) {present} but no {split!r} folder")
    return root, split in ("train", "test")


def list_images(base: Path) -> tuple[list[Path], np.ndarray | None, list[str] | None]:
    """Image paths in a stable order, with labels and class names when ``base`` has class folders."""
    entries = sorted(p for p in base.iterdir() if not p.name.startswith("."))
    class_dirs = [p for p in entries if p.is_dir()]
    loose = [p for p in entries if _is_image(p)]
    if class_dirs and loose:
        raise InputError(
            f"folder: {base} mixes class sub-folders ({class_dirs[0].name}, ...) with loose images "
            f"({loose[0].name}, ...); use one sub-folder per class, or a flat folder of images"
        )
    if not class_dirs:
        if not loose:
            raise InputError(f"folder: no images ({', '.join(IMAGE_SUFFIXES)}) found in {base}")
        return loose, None, None
    paths, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.rglob("*") if _is_image(p))
        if not files:
            raise InputError(f"folder: class folder {class_dir} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        paths += files
        labels += [label] * len(files)
    return paths, np.asarray(labels, dtype=np.int64), [d.name for d in class_dirs]


def _pick_resolution(sizes: list[tuple[int, int]], paths: list[Path], base: Path) -> int:
    distinct = sorted(set(sizes))
    if len(distinct) == 1 and distinct[0][0] == distinct[0][1]:
        return distinct[0][0]
    suggestion = int(np.median([min(s) for s in sizes]))
    if len(distinct) == 1:
        w, h = distinct[0]
        raise InputError(
            f"folder: images in {base} are {w}x{h}, not square; pass resolution= (e.g. resolution={suggestion})"
        )
    examples = ", ".join(f"{paths[sizes.index(s)].name} is {s[0]}x{s[1]}" for s in distinct[:3])
    raise InputError(
        f"folder: images in {base} have {len(distinct)} different sizes ({examples}); "
        f"pass resolution= to resize them (e.g. resolution={suggestion}, the median shorter side)"
    )


def _decode(path: Path, resolution: int, mode: str) -> np.ndarray:
    with Image.open(path) as img:
        if img.format == "JPEG":  # let libjpeg downscale by 1/2..1/8 while decoding: much faster for big photos
            scale = resolution / min(img.size)
            img.draft(mode, (math.ceil(img.size[0] * scale), math.ceil(img.size[1] * scale)))
        return np.asarray(resize_image(to_mode(img, mode), resolution))


def read_folder(root: str | Path | None, split: str, resolution: int | None) -> ImageDataset:
    """Decode every JPEG/PNG/WebP under ``root/split`` (or ``root``) to uint8 at one resolution.

    Images with different sizes need ``resolution`` (each is resized on its
    shorter side, then centre-cropped). Greyscale folders stay one-channel;
    any colour image makes the whole dataset RGB.
    """
    base, held_out = _split_folder(find_root("folder", root, None, "images, or one sub-folder of images per class"),
                                   split)
    paths, labels, classes = list_images(base)
    source = str(base)
    if held_out:
        if labels is None and split == "test":
            raise InputError(f"folder: {base} has no 'test' folder and no labels to score on: give it test/ and "
                             "train/ folders of class folders, or evaluate with --dataset on labelled data")
        if labels is not None:
            test = np.zeros(len(paths), dtype=bool)
            test[validation_rows(labels, HELD_OUT_FRACTION, HELD_OUT_SEED)] = True
            rows = np.flatnonzero(test if split == "test" else ~test)
            paths, labels = [paths[i] for i in rows], labels[rows]
            source = (f"{base} (no split folders: a seeded {HELD_OUT_FRACTION:.0%} of each class is 'test', "
                      "the rest 'train')")
    skipped: list[Path] = []
    sizes, modes, readable = [], [], []
    for i, path in enumerate(paths):  # first pass: headers only
        try:
            with Image.open(path) as img:
                check_pixels(img, str(path))
                sizes.append(img.size)
                modes.append(img.mode)
                readable.append(i)
        except Exception:  # noqa: BLE001 - PIL raises many kinds for bad files
            skipped.append(path)
    if not readable:
        raise InputError(f"folder: none of the {len(paths)} image files in {base} could be read (e.g. {paths[0]})")
    res = resolution if resolution is not None else _pick_resolution(sizes, [paths[i] for i in readable], base)
    if res < 1:
        raise InputError(f"folder: resolution must be a positive integer, got {res}")
    mode = "L" if all(m in _GREY_MODES for m in modes) else "RGB"
    out = np.empty((len(readable), res, res, 1 if mode == "L" else 3), dtype=np.uint8)
    kept = []
    for i in readable:  # second pass: decode (truncated files only fail here)
        try:
            out[len(kept)] = _decode(paths[i], res, mode).reshape(res, res, -1)
            kept.append(i)
        except Exception:  # noqa: BLE001
            skipped.append(paths[i])
    if not kept:
        raise InputError(f"folder: none of the {len(paths)} image files in {base} could be decoded (e.g. {paths[0]})")
    names = tuple(sorted(str(p.relative_to(base)) for p in skipped))
    if names:
        warnings.warn(
            f"folder: skipped {len(names)} unreadable image file(s) in {base}: "
            f"{', '.join(names[:_WARN_FIRST])}{', ...' if len(names) > _WARN_FIRST else ''}",
            stacklevel=3,
        )
    kept_labels = None if labels is None else labels[kept]
    return ImageDataset(out[: len(kept)], kept_labels, classes, "folder", source, names)
