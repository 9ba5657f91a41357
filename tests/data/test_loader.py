"""selfsup.data: readers for every format, the memmap cache, and the loaders."""
from __future__ import annotations

import gzip
import json
import pickle
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from selfsup.data import (
    Batch,
    BatchLoader,
    ImageDataset,
    dataset_names,
    from_arrays,
    iterate,
    load_dataset,
    prepare,
)
from selfsup.registry import ConfigError

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(), reason="Fashion-MNIST not installed")


# ---------------------------------------------------------------- file writers (the formats, written independently)


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


# ---------------------------------------------------------------- Fashion-MNIST (real files)


@needs_fashion
def test_fashion_mnist_train_and_test_have_the_published_shapes_and_classes():
    train = load_dataset("fashion_mnist", split="train")
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


@needs_fashion
def test_prepare_writes_a_memmap_cache_equal_to_the_direct_load(tmp_path):
    direct = load_dataset("fashion_mnist", split="test")
    path = prepare("fashion_mnist", split="test", cache_dir=tmp_path)
    cached = load_dataset("fashion_mnist", split="test", cache_dir=tmp_path)
    assert isinstance(cached.images, np.memmap) and cached.images.mode == "r"
    np.testing.assert_array_equal(cached.images, direct.images)
    np.testing.assert_array_equal(cached.labels, direct.labels)
    assert cached.classes == direct.classes
    assert cached.mean == pytest.approx(direct.mean) and cached.std == pytest.approx(direct.std)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["count"] == 10000 and meta["skipped_count"] == 0 and meta["root"] == str(FASHION.resolve())
    assert not list(tmp_path.glob(".tmp-*"))  # the temporary folder was renamed, not left behind


# ---------------------------------------------------------------- IDX errors


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


# ---------------------------------------------------------------- CIFAR


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
    meta = {b"fine_label_names": [f"f{i}".encode() for i in range(100)], b"coarse_label_names": [f"c{i}".encode() for i in range(20)]}
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


# ---------------------------------------------------------------- STL-10


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


# ---------------------------------------------------------------- image folders


def test_folder_with_class_subfolders_skips_a_corrupt_file_with_one_warning(tmp_path):
    write_image_folder(tmp_path, {"cat": 3, "dog": 2}, ext="png")
    write_image_folder(tmp_path / "more", {"dog": 1}, ext="webp")
    (tmp_path / "more" / "dog" / "0.webp").rename(tmp_path / "dog" / "extra.webp")
    (tmp_path / "more" / "dog").rmdir(), (tmp_path / "more").rmdir()
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (tmp_path / "cat" / "notes.txt").write_text("ignored: not an image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset("folder", root=tmp_path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "skipped 1 unreadable image file(s)" in messages[0] and "broken.jpg" in messages[0]
    assert ds.classes == ["cat", "dog"] and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.images.shape == (6, 20, 20, 3) and ds.skipped == (str(Path("cat") / "broken.jpg"),)
    original = np.asarray(Image.open(tmp_path / "cat" / "0.png"))
    np.testing.assert_array_equal(ds.images[0], original)  # PNG is lossless, native size: exact pixels


def test_flat_folder_is_unlabelled_and_greyscale_stays_one_channel(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    ds = load_dataset("folder", root=tmp_path)
    assert ds.labels is None and ds.images.shape == (3, 8, 8, 1) and ds.images[2].max() == 80


def test_folder_split_subfolders_are_used_when_present(tmp_path):
    write_image_folder(tmp_path / "train", {"a": 2, "b": 2})
    write_image_folder(tmp_path / "test", {"a": 1, "b": 1})
    assert len(load_dataset("folder", root=tmp_path, split="train")) == 4
    assert load_dataset("folder", root=tmp_path, split="test").labels.tolist() == [0, 1]
    with pytest.raises(FileNotFoundError, match=r"no 'unlabeled' folder"):
        load_dataset("folder", root=tmp_path, split="unlabeled")


def test_folder_of_mixed_sizes_needs_a_resolution_and_gets_a_suggestion(tmp_path):
    (tmp_path / "x").mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "x" / "wide.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x" / "small.jpg")
    with pytest.raises(ValueError, match=r"2 different sizes .* pass resolution= .*resolution=23"):
        load_dataset("folder", root=tmp_path)
    ds = load_dataset("folder", root=tmp_path, resolution=24)
    assert ds.images.shape == (2, 24, 24, 3)


def test_wrong_path_and_empty_folder_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data folder .*nowhere does not exist"):
        load_dataset("folder", root=tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"no images .* found in"):
        load_dataset("folder", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"train_X.bin"):
        load_dataset("stl10", root=tmp_path)
    with pytest.raises(ValueError, match=r"cifar10 needs root="):
        load_dataset("cifar10")


def test_folder_whose_every_file_is_corrupt_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"none of the 1 image files .* could be read"):
        load_dataset("folder", root=tmp_path)


def test_cached_folder_dataset_reads_no_image_files(tmp_path):
    src = tmp_path / "src"
    write_image_folder(src, {"a": 3, "b": 2}, side=12)
    direct = load_dataset("folder", root=src, resolution=8)
    cache = tmp_path / "cache"
    path = prepare("folder", root=src, resolution=8, cache_dir=cache)
    assert prepare("folder", root=src, resolution=6, cache_dir=cache) != path  # resolution is part of the key
    for f in src.rglob("*.png"):
        f.unlink()  # an epoch from the cache must not need them
    cached = load_dataset("folder", root=src, resolution=8, cache_dir=cache)
    np.testing.assert_array_equal(cached.images, direct.images)
    assert cached.labels.tolist() == [0, 0, 0, 1, 1] and cached.classes == ["a", "b"]
    assert prepare("folder", root=src, resolution=8, cache_dir=cache) == path


def test_prepare_records_skipped_files_in_meta(tmp_path):
    write_image_folder(tmp_path / "src", {"a": 2})
    (tmp_path / "src" / "a" / "bad.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="bad.png"):
        path = prepare("folder", root=tmp_path / "src", cache_dir=tmp_path / "cache")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["skipped_count"] == 1 and meta["skipped"] == [str(Path("a") / "bad.png")]


# ---------------------------------------------------------------- names, arrays, validation


def test_unknown_dataset_name_and_split_list_the_choices():
    assert {"fashion_mnist", "mnist", "cifar10", "cifar100", "stl10", "folder"} <= set(dataset_names())
    with pytest.raises(ConfigError, match=r"unknown dataset 'imagenet'; choose from: .*cifar10"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match=r"fashion_mnist has no split 'val'; choose from: train, test"):
        load_dataset("fashion_mnist", split="val")


@pytest.mark.parametrize(
    "layout, make",
    [
        ("NHW", lambda hwc: hwc[..., 0]),
        ("NHWC", lambda hwc: hwc),
        ("NCHW", lambda hwc: hwc.transpose(0, 3, 1, 2)),
        ("NCHW float", lambda hwc: hwc.transpose(0, 3, 1, 2).astype(np.float32) / 255),
        ("NHWC tensor", lambda hwc: torch.from_numpy(hwc)),
    ],
)
def test_from_arrays_accepts_each_layout(layout, make):
    hwc = pattern_images(4, 6)
    if layout == "NHW":
        hwc = hwc[..., :1]
    ds = from_arrays(make(hwc), labels=[0, 1, 2, 1], classes=["x", "y", "z"])
    np.testing.assert_array_equal(ds.images, hwc)
    assert ds.labels.dtype == np.int64 and ds.num_classes == 3


def test_from_arrays_rejects_bad_values_naming_them():
    with pytest.raises(ValueError, match=r"float images must lie in \[0, 1\], found values in \[0, 2\]"):
        from_arrays(np.linspace(0.0, 2.0, 32).reshape(2, 4, 4))
    with pytest.raises(ValueError, match=r"must be uint8 or float .* got dtype int32"):
        from_arrays(np.zeros((2, 4, 4), np.int32))
    with pytest.raises(ValueError, match=r"channel axis of size 1 or 3 .* \(2, 5, 4, 4\)"):
        from_arrays(np.zeros((2, 5, 4, 4), np.uint8))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\) to match 2 images, got \(3,\)"):
        from_arrays(np.zeros((2, 4, 4), np.uint8), labels=[0, 1, 2])
    with pytest.raises(ValueError, match=r"label 5 is out of range for 2 classes"):
        from_arrays(np.zeros((2, 4, 4), np.uint8), labels=[0, 5], classes=["a", "b"])
    with pytest.raises(ValueError, match=r"images.dtype must be uint8, got float32"):
        ImageDataset(np.zeros((2, 4, 4, 3), np.float32))


def test_mean_std_match_numpy_and_subset_copies_the_chosen_images():
    images = pattern_images(10, 5)
    ds = from_arrays(images, labels=np.arange(10) % 3)
    assert ds.mean == pytest.approx((images / 255).mean(axis=(0, 1, 2)).tolist())
    assert ds.std == pytest.approx((images / 255).std(axis=(0, 1, 2)).tolist())
    sub = ds.subset([7, 2])
    np.testing.assert_array_equal(sub.images, images[[7, 2]])
    assert sub.labels.tolist() == [1, 2] and len(sub) == 2


# ---------------------------------------------------------------- loaders


def small_dataset(n: int = 50) -> ImageDataset:
    return from_arrays(pattern_images(n, 4), labels=np.arange(n) % 5)


def served_indices(loader: BatchLoader, batches: int) -> list[list[int]]:
    out: list[list[int]] = []
    while len(out) < batches:
        for batch in loader:
            out.append(batch.index.tolist())
            if len(out) == batches:
                break
    return out


def test_loader_batches_hold_the_indexed_images_in_nchw():
    ds = small_dataset()
    loader = BatchLoader(ds, batch_size=8, seed=3)
    batch = next(iter(loader))
    assert isinstance(batch, Batch) and batch.images.shape == (8, 3, 4, 4) and batch.images.dtype == torch.uint8
    assert batch.images.is_contiguous() and batch.index.dtype == torch.int64
    idx = batch.index.numpy()
    np.testing.assert_array_equal(batch.images.numpy(), ds.images[idx].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(batch.labels.numpy(), ds.labels[idx])


def test_loader_epochs_are_reproducible_permutations_that_differ_between_epochs():
    ds = small_dataset()
    a, b = BatchLoader(ds, 8, seed=1), BatchLoader(ds, 8, seed=1)
    assert len(a) == 6  # 50 // 8, last partial batch dropped
    first, second = served_indices(a, 12), served_indices(b, 12)
    assert first == second
    epoch0, epoch1 = sum(first[:6], []), sum(first[6:], [])
    assert len(set(epoch0)) == 48 and epoch0 != epoch1 and a.epoch == 2
    assert served_indices(BatchLoader(ds, 8, seed=2), 6) != first[:6]
    ordered = served_indices(BatchLoader(ds, 8, shuffle=False, drop_last=False), 7)
    assert sum(ordered, []) == list(range(50))


@pytest.mark.parametrize("stop_after", [1, 5, 6, 9])
def test_resumed_loader_serves_exactly_the_uninterrupted_batches(stop_after):
    ds = small_dataset()
    reference = served_indices(BatchLoader(ds, 8, seed=7), 14)
    first = BatchLoader(ds, 8, seed=7)
    before = served_indices(first, stop_after)
    state = first.state_dict()
    resumed = BatchLoader(ds, 8, seed=7)
    resumed.load_state_dict(state)
    assert before + served_indices(resumed, 14 - stop_after) == reference


def test_loader_state_from_another_seed_is_refused():
    loader = BatchLoader(small_dataset(), 8, seed=1)
    with pytest.raises(ValueError, match=r"seed=2, this loader has 1"):
        loader.load_state_dict({"epoch": 0, "position": 0, "seed": 2, "batch_size": 8})


def test_prefetching_loader_serves_the_same_batches_and_stops_its_thread():
    ds = small_dataset()
    plain = [(b.index.tolist(), b.images) for b in BatchLoader(ds, 8, seed=4)]
    fetched = [(b.index.tolist(), b.images) for b in BatchLoader(ds, 8, seed=4, prefetch=True)]
    assert [p[0] for p in plain] == [f[0] for f in fetched]
    assert all(torch.equal(p[1], f[1]) for p, f in zip(plain, fetched))
    loader = BatchLoader(ds, 8, seed=4, prefetch=True)
    for _ in loader:
        break
    assert not [t for t in threading.enumerate() if t.name == "selfsup-prefetch"]
    assert loader.state_dict()["position"] == 1


def test_loader_with_batch_larger_than_dataset_is_an_error():
    with pytest.raises(ValueError, match=r"batch_size=64 exceeds the 50 images"):
        BatchLoader(small_dataset(), 64)


def test_iterate_keeps_the_last_partial_batch_in_order():
    ds = small_dataset(10)
    batches = list(iterate(ds, batch_size=4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert torch.cat([b.index for b in batches]).tolist() == list(range(10))
    np.testing.assert_array_equal(torch.cat([b.images for b in batches]).numpy(), ds.images.transpose(0, 3, 1, 2))
    assert next(iter(iterate(from_arrays(ds.images), 4))).labels is None


def test_data_parallel_ranks_split_each_epoch_into_disjoint_equal_shares():
    ds = small_dataset(50)
    shares = [served_indices(BatchLoader(ds, 4, seed=5, rank=r, world_size=3), 4) for r in range(3)]
    flat = [sum(s, []) for s in shares]
    assert all(len(f) == 16 for f in flat) and len(set(sum(flat, []))) == 48  # 50 // 3 = 16 each, disjoint
    assert len(BatchLoader(ds, 4, rank=2, world_size=3)) == 4
    with pytest.raises(ValueError, match=r"rank must lie in \[0, world_size=2\), got 2"):
        BatchLoader(ds, 4, rank=2, world_size=2)


def test_elpv_split_is_seeded_stratified_and_disjoint():
    pytest.importorskip("elpv_dataset")
    from selfsup.data import load_dataset

    train, test = (load_dataset("elpv", split=s, resolution=16) for s in ("train", "test"))
    assert len(train) + len(test) == 2624 and train.classes == test.classes and len(train.classes) == 4
    train_share = np.bincount(train.labels) / np.bincount(np.concatenate([train.labels, test.labels]))
    assert np.allclose(train_share, 0.75, atol=0.02)  # every defect grade split 75/25
    assert not {a.tobytes() for a in test.images[:200]} & {a.tobytes() for a in train.images}
    with pytest.raises(ValueError, match="split"):
        load_dataset("elpv", split="val")
