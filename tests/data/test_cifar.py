"""CIFAR-10/100 python pickles: orientation, fine and coarse labels, missing keys, pickles that would run code."""
from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest

from selfsup.data import load_dataset
from tests.data.writers import cifar_rows, pattern_images, write_cifar10


def test_cifar10_batches_decode_in_the_right_orientation(tmp_path):
    images, labels = write_cifar10(tmp_path / "cifar-10-batches-py")
    train = load_dataset("cifar10", root=tmp_path)  # finds the cifar-10-batches-py sub-folder
    test = load_dataset("cifar10", root=tmp_path / "cifar-10-batches-py", split="test")
    np.testing.assert_array_equal(train.images, images[:15])
    np.testing.assert_array_equal(test.images, images[15:])
    assert train.labels.tolist() == labels[:15].tolist() and train.classes[3] == "class3"
    assert tuple(train.images[0, 0, 0]) == (255, 0, 0) and tuple(train.images[0, 0, 1]) == (0, 255, 0)


def test_cifar100_reads_fine_labels_by_default_and_coarse_on_request(tmp_path):
    images = pattern_images(4, 32)
    for split in ("train", "test"):
        batch = {b"data": cifar_rows(images), b"fine_labels": [0, 57, 99, 3], b"coarse_labels": [0, 19, 5, 3]}
        (tmp_path / split).write_bytes(pickle.dumps(batch))
    meta = {
        b"fine_label_names": [f"f{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"c{i}".encode() for i in range(20)],
    }
    (tmp_path / "meta").write_bytes(pickle.dumps(meta))
    fine = load_dataset("cifar100", root=tmp_path, split="test")
    coarse = load_dataset("cifar100_coarse", root=tmp_path)
    assert fine.labels.tolist() == [0, 57, 99, 3] and len(fine.classes) == 100
    assert coarse.labels.tolist() == [0, 19, 5, 3] and coarse.classes[19] == "c19"
    np.testing.assert_array_equal(fine.images, images)


def test_cifar_pickle_without_expected_keys_is_rejected_naming_the_key(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"pixels": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(ValueError, match=r"data_batch_3: CIFAR batch lacks key\(s\) \['data', 'labels'\]"):
        load_dataset("cifar10", root=tmp_path)


def test_cifar_pickle_that_would_run_code_is_refused(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": threading.Thread}))
    with pytest.raises(ValueError, match=r"test_batch: not a CIFAR python pickle .*threading.Thread"):
        load_dataset("cifar10", root=tmp_path, split="test")


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_cifar_batches_re_saved_with_any_pickle_protocol_load(tmp_path, protocol):
    images, labels = write_cifar10(tmp_path)
    for path in (*tmp_path.glob("data_batch_*"), tmp_path / "test_batch", tmp_path / "batches.meta"):
        with open(path, "rb") as f:
            obj = pickle.load(f)
        if protocol < 3:  # as Python 3 writes old protocols: a bytes label, a numpy array
            obj = {**obj, b"data": np.asarray(obj[b"data"])} if b"data" in obj else obj
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
    test = load_dataset("cifar10", root=tmp_path, split="test")
    np.testing.assert_array_equal(test.images, images[15:])


def test_a_protocol_2_pickle_may_only_use_latin1_encoding(tmp_path):
    import codecs

    write_cifar10(tmp_path)

    class Sneaky:
        def __reduce__(self):
            return (codecs.encode, ("x\\x9c", "zlib_codec"))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Sneaky()}, protocol=2))
    with pytest.raises(ValueError, match="not a CIFAR python pickle"):
        load_dataset("cifar10", root=tmp_path, split="test")
