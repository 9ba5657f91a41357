"""ImageDataset and from_arrays: every array layout, bad values named, channel statistics, subsets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.data import ImageDataset, from_arrays
from tests.data.writers import pattern_images


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
