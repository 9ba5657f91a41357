"""STL-10 binaries: column-major images upright, unlabeled splits, files of the wrong size or label count."""
from __future__ import annotations

import numpy as np
import pytest

from selfsup.data import load_dataset
from tests.data.writers import write_stl10


def test_stl10_column_major_images_come_out_upright(tmp_path):
    written = write_stl10(tmp_path / "stl10_binary")
    train = load_dataset("stl10", root=tmp_path)
    np.testing.assert_array_equal(train.images, written["train"])
    assert tuple(train.images[0, 0, 1]) == (0, 255, 0)  # row 0, column 1: not transposed
    assert train.labels.tolist() == written["train_y"].tolist() and train.classes[0] == "airplane"
    test = load_dataset("stl10", root=tmp_path, split="test")
    np.testing.assert_array_equal(test.images, written["test"])


def test_stl10_unlabeled_splits_carry_no_labels(tmp_path):
    written = write_stl10(tmp_path)
    unlabeled = load_dataset("stl10", root=tmp_path, split="unlabeled")
    both = load_dataset("stl10", root=tmp_path, split="train+unlabeled", resolution=48)
    assert unlabeled.labels is None and len(unlabeled) == 5
    np.testing.assert_array_equal(unlabeled.images, written["unlabeled"])
    assert both.labels is None and both.images.shape == (9, 48, 48, 3)


def test_stl10_file_of_wrong_size_is_rejected(tmp_path):
    write_stl10(tmp_path)
    (tmp_path / "test_X.bin").write_bytes(b"\0" * (96 * 96 * 3 + 7))
    with pytest.raises(ValueError, match=r"test_X.bin: 27655 bytes is not a positive multiple of 96\*96\*3"):
        load_dataset("stl10", root=tmp_path, split="test")


def test_stl10_label_count_mismatch_is_an_error(tmp_path):
    write_stl10(tmp_path)
    (tmp_path / "train_y.bin").write_bytes(bytes([1, 2, 3]))
    with pytest.raises(ValueError, match=r"train_y.bin: 3 labels, but .*train_X.bin holds 4 images"):
        load_dataset("stl10", root=tmp_path)
