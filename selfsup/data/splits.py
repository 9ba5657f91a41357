"""The validation split: held-out rows of a labelled training split, for every choice that is not a final number.

A dataset's official training split is read by its reader; ``"train"`` is that
split minus a seeded, class-balanced ``fraction`` of each class, ``"val"`` is the
rows held out, and ``"trainval"`` is the official training split whole (the
convention of Pascal VOC). ``"test"`` is the official test split, read only to
report final numbers: with ``SELFSUP_LOCK_TEST=1`` in the environment, reading it
is an error, which is how the learning tests and tuning commands prove they never do.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from selfsup.config import DataConfig
from selfsup.data.dataset import ImageDataset
from selfsup.registry import InputError

VAL_FRACTION = DataConfig.val_fraction
VAL_SEED = DataConfig.val_seed
CARVED = ("train", "val")  # split names made from the official training split
LOCK_ENV = "SELFSUP_LOCK_TEST"


def validation_rows(labels: np.ndarray, fraction: float = VAL_FRACTION, seed: int = VAL_SEED) -> np.ndarray:
    """Sorted row indices of the validation split: ``round(fraction * n_c)`` seeded rows of every class ``c``."""
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"data.val_fraction must be in [0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    rows = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rows.append(rng.permutation(members)[: int(round(fraction * len(members)))])
    return np.sort(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int64)


def carve(official_train: ImageDataset, split: str, fraction: float = VAL_FRACTION,
          seed: int = VAL_SEED) -> ImageDataset:
    """``split`` ("train" or "val") of an official training split; unlabelled data has no validation rows."""
    if split not in CARVED:
        raise ValueError(f"carve: split must be one of {CARVED}, got {split!r}")
    if official_train.labels is None or fraction == 0.0:
        if split == "val":
            why = "it has no labels" if official_train.labels is None else "data.val_fraction is 0"
            raise InputError(f"{official_train.name} has no 'val' split: {why}")
        return official_train
    val = validation_rows(official_train.labels, fraction, seed)
    if split == "val" and len(val) == 0:
        raise InputError(f"{official_train.name}: data.val_fraction={fraction} holds out no image of any class")
    keep = val if split == "val" else np.setdiff1d(np.arange(len(official_train)), val, assume_unique=True)
    out = official_train.subset(keep)
    out.skipped = official_train.skipped
    return out


def is_test_locked() -> bool:
    return os.environ.get(LOCK_ENV, "") not in ("", "0")


@contextlib.contextmanager
def locked_test_split() -> Iterator[None]:
    """Inside it, reading a test split is an error; the environment is restored on the way out."""
    before = os.environ.get(LOCK_ENV)
    os.environ[LOCK_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LOCK_ENV, None)
        else:
            os.environ[LOCK_ENV] = before


def check_test_unlocked(name: str, split: str) -> None:
    """Refuse to read a test split while ``SELFSUP_LOCK_TEST`` is set (learning tests, tuning, choices)."""
    if split == "test" and is_test_locked():
        raise InputError(
            f"{name}: the test split is locked ({LOCK_ENV} is set): choices are made on split 'val'; "
            "unset it to report final numbers"
        )
