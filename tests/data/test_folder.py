"""Image folders: class subfolders, flat folders, split subfolders, mixed sizes, corrupt files."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from selfsup.data import load_dataset
from tests.data.writers import write_image_folder


def test_folder_with_class_subfolders_skips_a_corrupt_file_with_one_warning(tmp_path):
    write_image_folder(tmp_path, {"cat": 3, "dog": 2}, ext="png")
    write_image_folder(tmp_path / "more", {"dog": 1}, ext="webp")
    (tmp_path / "more" / "dog" / "0.webp").rename(tmp_path / "dog" / "extra.webp")
    (tmp_path / "more" / "dog").rmdir(), (tmp_path / "more").rmdir()
    (tmp_path / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (tmp_path / "cat" / "notes.txt").write_text("ignored: not an image")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset("folder", root=tmp_path, split="all")  # every image: no rows held out
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


def test_a_labelled_folder_without_split_folders_is_split_so_test_never_holds_training_images(tmp_path):
    write_image_folder(tmp_path, {"a": 10, "b": 5})
    train = load_dataset("folder", root=tmp_path, split="trainval")
    test = load_dataset("folder", root=tmp_path, split="test")
    assert sorted(test.labels.tolist()) == [0, 0, 1]  # a seeded 20% of each class
    assert len(train) == 12 and "a seeded 20% of each class is 'test'" in test.source
    pixels = {im.tobytes() for im in train.images}
    assert not any(im.tobytes() in pixels for im in test.images)
    assert len(load_dataset("folder", root=tmp_path, split="all")) == 15


def test_an_unlabelled_flat_folder_has_no_test_split_to_score(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(ValueError, match=rf"{tmp_path} has no 'test' folder and no labels"):
        load_dataset("folder", root=tmp_path, split="test")


def test_folder_of_mixed_sizes_needs_a_resolution_and_gets_a_suggestion(tmp_path):
    (tmp_path / "x").mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / "x" / "wide.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "x" / "small.jpg")
    with pytest.raises(ValueError, match=r"2 different sizes .* pass resolution= .*resolution=23"):
        load_dataset("folder", root=tmp_path)
    ds = load_dataset("folder", root=tmp_path, resolution=24)
    assert ds.images.shape == (2, 24, 24, 3)


def test_folder_whose_every_file_is_corrupt_is_an_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"none of the 1 image files .* could be read"):
        load_dataset("folder", root=tmp_path)


def test_16_bit_grey_pngs_are_scaled_to_8_bits_not_clipped(tmp_path):
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1040)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    ds = load_dataset("folder", root=tmp_path, split="all")
    np.testing.assert_allclose(ds.images[0, :, :, 0], np.round(ramp / 257.0), atol=1)


def test_an_image_over_the_pixel_limit_is_skipped_from_its_header(tmp_path):
    Image.new("1", (12_000, 12_000)).save(tmp_path / "huge.png")  # 144 megapixels, a few kB on disk
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "small.png")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image file\(s\) .*huge.png"):
        ds = load_dataset("folder", root=tmp_path, split="all", resolution=8)
    assert len(ds) == 1
