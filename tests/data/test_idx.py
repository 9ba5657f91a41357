"""IDX files (MNIST, Fashion-MNIST): the real Fashion-MNIST files, and bad or truncated IDX files named in errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selfsup.data import load_dataset
from tests.data.writers import write_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(), reason="Fashion-MNIST not installed"
)


@needs_fashion
def test_fashion_mnist_train_and_test_have_the_published_shapes_and_classes():
    train = load_dataset("fashion_mnist", split="trainval")
    test = load_dataset("fashion_mnist", split="test")
    assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 28, 28, 1)
    assert len(train.classes) == 10 and train.classes[9] == "Ankle boot"
    for ds in (train, test):
        assert ds.labels.dtype == np.int64 and set(np.unique(ds.labels)) == set(range(10))
        assert np.bincount(ds.labels).tolist() == [len(ds) // 10] * 10  # Fashion-MNIST is balanced
    assert train.mean[0] == pytest.approx(0.286, abs=0.005) and train.std[0] == pytest.approx(0.353, abs=0.005)


@needs_fashion
def test_fashion_mnist_resized_to_32_keeps_the_picture():
    native = load_dataset("fashion_mnist", split="test")
    big = load_dataset("fashion_mnist", split="test", resolution=32)
    assert big.images.shape == (10000, 32, 32, 1) and big.resolution == 32 and big.channels == 1
    np.testing.assert_array_equal(big.labels, native.labels)
    back = np.asarray(Image.fromarray(big.images[7, :, :, 0]).resize((28, 28), Image.Resampling.BILINEAR))
    errors = np.abs(back.astype(int)[None] - native.images[:50, :, :, 0]).mean(axis=(1, 2))
    assert errors.argmin() == 7 and errors[7] < 20  # shrunk back, it is still the same garment
    assert np.abs(big.images[:100].mean() - native.images[:100].mean()) < 2


def test_idx_with_bad_magic_number_is_rejected_naming_the_file(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((2, 4, 4)), magic=b"\x12\x34\x08\x03")
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(2))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: not an IDX file: magic number 0x12340803"):
        load_dataset("mnist", root=tmp_path)


def test_idx_label_count_mismatch_is_an_error(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 4, 4)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4))
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: 4 labels, but .* holds 5 images"):
        load_dataset("mnist", root=tmp_path, split="test")


def test_plain_idx_files_load_and_truncated_data_is_an_error(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 5, 5))
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([3, 1, 4]))
    ds = load_dataset("mnist", root=tmp_path)
    np.testing.assert_array_equal(ds.images[..., 0], images)
    assert ds.labels.tolist() == [3, 1, 4]
    raw = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(raw[:-1])
    with pytest.raises(ValueError, match=r"IDX header says shape \(3, 5, 5\)"):
        load_dataset("mnist", root=tmp_path)


def test_a_gz_bomb_is_refused_without_inflating_it(tmp_path):
    import gzip
    import tracemalloc

    from selfsup.data.idx import read_idx

    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (4).to_bytes(4, "big") + (4).to_bytes(4, "big"))
        for _ in range(64):
            f.write(bytes(1 << 20))  # 64 MB of zeros after a 32-byte body
    tracemalloc.start()
    with pytest.raises(ValueError, match=r"header says shape \(2, 4, 4\) \(32 bytes of data\), file holds more"):
        read_idx(bomb)
    assert tracemalloc.get_traced_memory()[1] < 8 << 20
    tracemalloc.stop()
    liar = tmp_path / "liar-idx3-ubyte.gz"
    with gzip.open(liar, "wb") as f:
        f.write(b"\x00\x00\x08\x03" + b"".join(n.to_bytes(4, "big") for n in (60000, 10000, 10000)))
    with pytest.raises(ValueError, match=r"more than the \d+-byte file can hold"):
        read_idx(liar)
