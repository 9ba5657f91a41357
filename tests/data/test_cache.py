"""`prepare`: the uint8 memmap cache equals the direct load, reads no image files, and records skipped files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from selfsup.data import load_dataset, prepare
from tests.data.writers import write_image_folder

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(), reason="Fashion-MNIST not installed"
)


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
    assert cached.labels.tolist() == direct.labels.tolist() and cached.classes == ["a", "b"]
    assert len(cached) == 4  # the flat folder's seeded test row (one of class a) is not in "train"
    assert prepare("folder", root=src, resolution=8, cache_dir=cache) == path


def test_prepare_records_skipped_files_in_meta(tmp_path):
    write_image_folder(tmp_path / "src", {"a": 2})
    (tmp_path / "src" / "a" / "bad.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="bad.png"):
        path = prepare("folder", root=tmp_path / "src", cache_dir=tmp_path / "cache")
    meta = json.loads((path / "meta.json").read_text())
    assert meta["skipped_count"] == 1 and meta["skipped"] == [str(Path("a") / "bad.png")]
