"""The validation split: class-balanced, seeded, disjoint from "train", cached apart, and the test-split lock."""
from __future__ import annotations

import numpy as np
import pytest

from selfsup.data import from_arrays, load_dataset, prepare
from selfsup.data.splits import LOCK_ENV, carve, validation_rows
from selfsup.registry import InputError
from tests.data.writers import pattern_images, write_cifar10, write_stl10


def _labelled(n_per_class: int = 20, classes: int = 3):
    labels = np.repeat(np.arange(classes), n_per_class)
    return from_arrays(pattern_images(len(labels), 8), labels, [f"c{i}" for i in range(classes)])


def test_validation_rows_take_the_fraction_of_every_class_and_depend_only_on_the_seed():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    rows = validation_rows(labels, 0.1, seed=0)
    assert np.bincount(labels[rows]).tolist() == [5, 3, 2]
    assert np.array_equal(rows, validation_rows(labels, 0.1, seed=0)) and np.all(np.diff(rows) > 0)
    assert not np.array_equal(rows, validation_rows(labels, 0.1, seed=1))


def test_train_and_val_partition_the_official_training_split():
    full = _labelled()
    train, val = carve(full, "train", 0.25), carve(full, "val", 0.25)
    assert len(train) + len(val) == len(full) and np.bincount(val.labels).tolist() == [5, 5, 5]
    rows = {img.tobytes() for img in np.asarray(full.images)}
    seen_train, seen_val = ({img.tobytes() for img in np.asarray(d.images)} for d in (train, val))
    assert seen_train | seen_val == rows and not seen_train & seen_val


def test_unlabelled_data_trains_on_everything_and_has_no_val():
    unlabelled = from_arrays(pattern_images(10, 8))
    assert carve(unlabelled, "train") is unlabelled
    with pytest.raises(InputError, match="has no 'val' split: it has no labels"):
        carve(unlabelled, "val")
    with pytest.raises(InputError, match="val_fraction is 0"):
        carve(_labelled(), "val", 0.0)
    with pytest.raises(InputError, match=r"val_fraction must be in \[0, 1\)"):
        validation_rows(np.zeros(4, dtype=np.int64), 1.0)


def test_load_dataset_serves_train_val_trainval_and_caches_them_apart(tmp_path):
    write_cifar10(tmp_path / "c", per_batch=20)  # 100 training images
    kw = dict(root=tmp_path / "c", val_fraction=0.2)
    train, val, whole = (load_dataset("cifar10", split=s, **kw) for s in ("train", "val", "trainval"))
    assert (len(train), len(val), len(whole)) == (80, 20, 100) and np.bincount(val.labels).tolist() == [2] * 10
    cached = load_dataset("cifar10", split="val", cache_dir=tmp_path / "cache", **kw)
    np.testing.assert_array_equal(np.asarray(cached.images), val.images)
    assert prepare("cifar10", split="val", cache_dir=tmp_path / "cache", **kw) != prepare(
        "cifar10", split="train", cache_dir=tmp_path / "cache", **kw)
    assert prepare("cifar10", split="val", cache_dir=tmp_path / "cache", root=tmp_path / "c", val_fraction=0.3) != \
        prepare("cifar10", split="val", cache_dir=tmp_path / "cache", **kw)


def test_joined_splits_leave_out_the_validation_rows(tmp_path):
    write_stl10(tmp_path, n_train=20, n_test=2, n_unlabeled=5)
    val = load_dataset("stl10", root=tmp_path, split="val", val_fraction=0.5)
    both = load_dataset("stl10", root=tmp_path, split="train+unlabeled", val_fraction=0.5)
    assert both.labels is None and len(both) == 20 - len(val) + 5


def test_the_lock_refuses_the_test_split_and_nothing_else(tmp_path, monkeypatch):
    write_cifar10(tmp_path, per_batch=4)
    monkeypatch.setenv(LOCK_ENV, "1")
    with pytest.raises(InputError, match="cifar10: the test split is locked"):
        load_dataset("cifar10", root=tmp_path, split="test")
    with pytest.raises(InputError, match="test split is locked"):
        prepare("cifar10", root=tmp_path, split="test", cache_dir=tmp_path / "cache")
    load_dataset("cifar10", root=tmp_path, split="val", val_fraction=0.5)
    monkeypatch.setenv(LOCK_ENV, "0")
    load_dataset("cifar10", root=tmp_path, split="test")
